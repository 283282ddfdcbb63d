"""The Fly provider against a fault-injecting fake: 200 sessions created and ended while 30 % of the
provider calls fail (429, 500/502/503, or a timeout; half of the 5xx and timeouts after doing the work).

The fake is ``machines/testing/fly_fake.py`` (a real loopback HTTP server) with random faults. Each session
goes through the real services, as the task would run them: ``session_create`` → ``session_provision``
→ ``session_end``, eight at a time. Then, with the storm over, one reconciliation runs (when the
reconciliation service is merged), and the fake is asked what still runs: nothing should, and every
session must be ``ended`` or ``failed`` with a reason.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from unittest import mock

from machines.testing.fly_fake import FakeFly, Fault
from resilience.context import Context
from resilience.report import NotRun, Outcome

SESSIONS = 200
FAULT_RATE = 0.3
TIMEOUT = 0.5


class FaultyFly(FakeFly):
    """A fake Fly whose calls fail at random, reproducibly (seeded)."""

    def __init__(self, rate: float, seed: int = 9) -> None:
        super().__init__()
        self.rate, self.random, self.injected = rate, random.Random(seed), Counter[str]()  # noqa: S311

    def _next_fault(self, action: str) -> Fault | None:
        queued = super()._next_fault(action)
        if queued is not None or self.rate == 0 or self.random.random() >= self.rate:
            return queued
        kind = self.random.choice(["429", "5xx", "timeout"])
        self.injected[kind] += 1
        if kind == "429":
            return Fault(status=429, retry_after="0")
        if kind == "5xx":
            return Fault(status=self.random.choice([500, 502, 503]), apply=self.random.random() < 0.5)
        return Fault(delay=TIMEOUT + 0.3, apply=self.random.random() < 0.5)

    def live_machines(self) -> list[str]:
        return [m["id"] for m in self.machines.values() if m["state"] != "destroyed"]


def make_provider(fake: FakeFly) -> Any:
    from machines.providers.fly import FlyConfig, FlyProvider
    from machines.providers.pacing import ActionPacer, Limit

    config = FlyConfig(
        api_token="resilience",  # noqa: S106  (the fake's token)
        app_name="resilience",
        base_url=fake.base_url,
        request_timeout=TIMEOUT,
        backoff_base=0.05,
        backoff_max=0.2,
        max_retry_after=1.0,
    )
    provider = FlyProvider(config)
    # Fly's real pacing (1 create per second) would stretch the burst to minutes; the fake has no limit,
    # and this scenario is about faults, not pacing (tested in machines/tests/test_pacing.py).
    provider._pacer = ActionPacer(default=Limit(1000, 1000), clock=time.monotonic, sleep=time.sleep)
    return provider


@contextlib.contextmanager
def fly_provider(fake: FakeFly) -> Iterator[Any]:
    """Every module that looked up ``get_provider`` gets the faulty one; provisioning is not enqueued
    (the scenario runs it itself, as the task would)."""
    from django.test import override_settings

    provider = make_provider(fake)
    importlib.import_module("machines.services")
    users = [m for name, m in list(sys.modules.items()) if name.startswith("machines.") and hasattr(m, "get_provider")]
    with contextlib.ExitStack() as stack:
        stack.enter_context(override_settings(MACHINE_PROVIDER="fly", FLY_APP_NAME="resilience", FLY_REGION="iad"))
        for module in users:
            stack.enter_context(mock.patch.object(module, "get_provider", lambda kind=None: provider))
        stack.enter_context(mock.patch("sessions.services.create._enqueue_provisioning", lambda session_id: None))
        yield provider
    provider.close()


def one_session(index: int) -> str:
    """Create, provision and end one session as the API and the task would; the session's final status."""
    from django.db import connection
    from django.utils import timezone

    from sessions.models import EndReason, PreviewSession
    from sessions.services import session_create, session_end, session_provision
    from velocity.auth import user_claims

    try:
        user = uuid.uuid4()
        session, _ = session_create(
            claims=user_claims(user), user_id=user, project_id=f"burst-{index}", memory_mb=512, now=timezone.now()
        )
        session_provision(session_id=session.id, now=timezone.now())
        session = PreviewSession.objects.get(id=session.id)
        session_end(session=session, reason=EndReason.USER, now=timezone.now())
        return PreviewSession.objects.get(id=session.id).status
    except Exception as error:  # a crash here is a finding, not the end of the burst
        return f"raised {type(error).__name__}: {str(error)[:80]}"
    finally:
        connection.close()


def burst(out: Outcome) -> list[str]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one_session, range(SESSIONS)))
    out.saw(f"final statuses: {dict(Counter(statuses))}")
    return statuses


def check_sessions(out: Outcome) -> None:
    from sessions.models import PreviewSession

    burst_rows = PreviewSession.objects.filter(project_id__startswith="burst-")
    unfinished = burst_rows.exclude(status__in=["ended", "failed"]).count()
    no_reason = burst_rows.filter(end_reason="").count()
    failed = burst_rows.filter(status="failed")
    out.check(unfinished == 0, "every session is ended or failed", f"{unfinished} sessions neither ended nor failed")
    out.check(no_reason == 0, "every session has an end reason", f"{no_reason} sessions without an end reason")
    details = Counter(detail.split(":")[0] for detail in failed.values_list("end_detail", flat=True))
    out.saw(f"{failed.count()} failed, with details {dict(details)}")


def drift_orphans(provider: Any) -> int:
    """Orphans by the pure drift computation (what a reconciliation would have to destroy)."""
    from django.utils import timezone

    from machines.models import Machine
    from machines.providers.base import MachineState
    from machines.reconcile import KnownMachine, compute_drift

    known = [
        KnownMachine(
            id=str(m.id),
            name=f"velocity-{m.id.hex}",
            provider_id=m.provider_machine_id or None,
            state=MachineState(m.state),
            created_at=m.created_at,
            ended_at=m.destroyed_at,
        )
        for m in Machine.objects.filter(provider="fly")
    ]
    report = compute_drift(provider.list(), known, now=timezone.now(), grace=timedelta(0))
    return len(report.orphans)


def merged_service(name: str) -> Any:
    """A service of ``machines.services`` that another branch adds, or NotRun naming it."""
    service = getattr(importlib.import_module("machines.services"), name, None)
    if service is None:
        raise NotRun(f"machines.services.{name} is not merged yet")
    return service


def reconcile_once() -> str:
    from django.utils import timezone

    return str(merged_service("machine_reconcile")(now=timezone.now()))


def describe(fake: FaultyFly) -> list[str]:
    """Each machine still running at the fake, with what the database believes of it."""
    from machines.models import Machine

    described = []
    for machine_id in fake.live_machines():
        name = fake.machines[machine_id]["name"]
        row = (
            Machine.objects.filter(provider_machine_id=machine_id).first()
            or Machine.objects.filter(id=uuid.UUID(hex=name.removeprefix("velocity-"))).first()
        )
        described.append(f"{machine_id} ({'unknown to the database' if row is None else 'database: ' + row.state})")
    return described


def run(ctx: Context, out: Outcome) -> None:
    logging.getLogger("machines.providers.fly").setLevel(logging.ERROR)  # hundreds of expected retry warnings
    fake = FaultyFly(FAULT_RATE)
    fake.start()
    try:
        with fly_provider(fake) as provider:
            out.step(
                f"{SESSIONS} sessions created, provisioned and ended, 8 at a time, {FAULT_RATE:.0%} of calls failing"
            )
            burst(out)
            out.saw(f"injected faults: {dict(fake.injected)} over {len(fake.requests)} requests")
            check_sessions(out)
            fake.rate = 0
            out.saw(
                f"machines still running at the fake before reconciliation: {describe(fake)}; "
                f"orphans by compute_drift: {drift_orphans(provider)}"
            )
            out.step("one reconciliation, with the storm over")
            out.saw(f"reconciliation: {reconcile_once()}")
            left = fake.live_machines()
            out.check(not left, "no machine left running at the provider", f"{len(left)} orphan machines left")
    finally:
        fake.stop()

"""Reconciliation acting on real drift: the local provider's real processes, and the Fly fake."""

import os
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from machines.models import ReconcileReport
from machines.providers import get_provider
from machines.providers.base import Guest, MachineSpec, MachineState, preview_metadata
from machines.selectors import reconcile_latest
from machines.services import machine_reconcile
from machines.testing.fly_fake import FakeFly
from machines.tests.factories import machine_with_history
from sessions.models import PreviewSession, SessionStatus
from velocity.locks import instance_lock
from velocity.testing import require

NO_GRACE = timedelta(0)


def old(minutes: int = 10) -> datetime:
    return timezone.now() - timedelta(minutes=minutes)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_real_local_machine_the_database_does_not_know_is_destroyed_and_priced(local: Path) -> None:
    provider = get_provider()
    metadata = preview_metadata(session_id="", project_id="", user_id="")
    spec = MachineSpec(name="stray", guest=Guest(memory_mb=256), env={"INACTIVITY_TIMEOUT": "600"}, metadata=metadata)
    provider.create(spec)
    provider.wait_for_state("stray", MachineState.STARTED, timeout=20)
    runner = int((local / "stray" / "runner.pid").read_text())
    report = machine_reconcile(now=timezone.now(), grace=NO_GRACE)
    assert report is not None and (report.seen, report.orphans, report.ghosts) == (1, 1, 0)
    assert report.orphan_hourly_cost > 0
    assert provider.list() == []
    with pytest.raises(ProcessLookupError):
        os.killpg(runner, 0)


@pytest.mark.django_db
def test_a_machine_gone_at_the_provider_is_buried_and_its_session_ends_orphaned(local: Path) -> None:
    ghost = machine_with_history([("created", old()), ("started", old())], provider_machine_id="vanished")
    session = PreviewSession.objects.create(
        user_id=uuid.uuid4(), project_id="p", machine=ghost, status=SessionStatus.ACTIVE
    )
    report = machine_reconcile(now=timezone.now())
    ghost.refresh_from_db()
    session.refresh_from_db()
    assert report is not None and report.ghosts == 1 and report.detail["ghosts"] == [str(ghost.id)]
    assert ghost.state == "destroyed"
    assert ghost.events.get(to_state="destroyed").source == "schedule"
    assert (session.status, session.end_reason) == ("ended", "orphaned")
    assert reconcile_latest() == report


@pytest.mark.django_db
def test_both_directions_and_a_stuck_destroy_against_fly(fly_api: FakeFly) -> None:
    tagged = preview_metadata(session_id="s", project_id="p", user_id="u")
    orphan_id = fly_api.add_machine("velocity-orphan", metadata=tagged)
    fly_api.add_machine("someone-elses", metadata={"team": "web"})
    known_id = fly_api.add_machine("velocity-known", metadata=tagged)
    stuck_id = fly_api.add_machine("velocity-stuck", metadata=tagged)
    known = machine_with_history([("created", old()), ("started", old())], provider="fly", provider_machine_id=known_id)
    stuck = machine_with_history(
        [("created", old()), ("started", old()), ("destroying", old(5))], provider="fly", provider_machine_id=stuck_id
    )
    ghost = machine_with_history([("created", old()), ("started", old())], provider="fly", provider_machine_id="gone1")
    failed = machine_with_history([("created", old()), ("failed", old(5))], provider="fly", provider_machine_id="gone2")
    report = machine_reconcile(now=timezone.now(), grace=NO_GRACE)
    assert report is not None
    assert (report.seen, report.orphans, report.ghosts, report.mismatches, report.retried) == (3, 2, 1, 0, 2)
    assert {fly_api.machines[i]["state"] for i in (orphan_id, stuck_id)} == {"destroyed"}
    assert fly_api.machines[known_id]["state"] == "started"
    for row, state in ((known, "started"), (stuck, "destroyed"), (ghost, "destroyed"), (failed, "destroyed")):
        row.refresh_from_db()
        assert row.state == state
    assert {c.path.rsplit("/", 1)[-1] for c in fly_api.calls("destroy")} == {orphan_id, stuck_id}


@pytest.mark.django_db
def test_a_provider_outage_is_reported_not_raised(fly_api: FakeFly) -> None:
    fly_api.stop()
    report = machine_reconcile(now=timezone.now())
    assert report is not None and report.error
    assert ReconcileReport.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_instance_skips_while_the_first_reconciles(local: Path) -> None:
    require(
        connection.vendor == "postgresql", "the instance lock is a PostgreSQL advisory lock; SQLite runs one instance"
    )
    held, release = threading.Event(), threading.Event()

    def first_instance() -> None:
        with instance_lock("machines.reconcile"):
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=first_instance)
    thread.start()
    held.wait(10)
    try:
        assert machine_reconcile(now=timezone.now()) is None
    finally:
        release.set()
        thread.join()
    assert machine_reconcile(now=timezone.now()) is not None

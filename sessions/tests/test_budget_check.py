"""The scheduled budget check end to end: real sessions and machines whose state events are the cost records,
PostgreSQL, the django-q2 task function, time frozen and moved by time-machine."""

import asyncio
import math
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, connections

from machines.models import MachineState
from machines.selectors import machine_hourly_cost
from realtime_bridge.events import session_group
from sessions import services, tasks
from sessions.models import BudgetNotice, EndReason, PreviewSession, Quota, SessionStatus
from sessions.signals import budget_warning
from sessions.testing import live_session
from velocity.testing import require

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
CAP = Decimal("0.10")


@pytest.fixture
def warnings() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, *, signal: Any, **data: Any) -> None:
        sent.append(data)

    budget_warning.connect(receive, weak=False, dispatch_uid="test-budget-warnings")
    yield sent
    budget_warning.disconnect(dispatch_uid="test-budget-warnings")


def at_percent(session: PreviewSession, percent: int) -> datetime:
    """The first second at which the session's machine, started at T0, has cost ``percent`` of CAP."""
    assert session.machine is not None
    per_second = machine_hourly_cost(session.machine) / 3600
    return T0 + timedelta(seconds=math.ceil(CAP * percent / 100 / per_second))


def next_budget_event(channel: str) -> dict[str, Any]:
    """The next ``session.budget`` event queued on ``channel`` (read in the frozen time it was sent at: the
    layer drops messages older than its expiry)."""

    async def receive() -> dict[str, Any]:
        layer = get_channel_layer()
        async with asyncio.timeout(10):
            while True:
                event = (await layer.receive(channel))["event"]
                if event["kind"] == "session.budget":
                    return dict(event)

    return async_to_sync(receive)()


def listen(session: PreviewSession) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(session_group(str(session.id)), channel)
    return channel


def test_a_user_is_warned_at_80_and_95_once_each_and_ended_at_100_while_others_run_on(
    django_capture_on_commit_callbacks: Any, warnings: list[dict[str, Any]], audits: list[dict[str, Any]]
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP)
    with time_machine.travel(T0, tick=False) as clock:
        mine, theirs = live_session(user_id=user, project="mine"), live_session(user_id=other, project="theirs")
        channel = listen(mine)

        def check_at(percent: int) -> str:
            clock.move_to(at_percent(mine, percent))
            with django_capture_on_commit_callbacks(execute=True):
                return tasks.enforce_budgets()

        assert check_at(79).endswith("0 warned, 0 session(s) ended")
        assert warnings == [] and not BudgetNotice.objects.exists()
        check_at(80)
        events = [next_budget_event(channel)]
        assert check_at(81).endswith("0 warned, 0 session(s) ended")  # the next run: no second warning
        assert [(w["user_id"], w["level"]) for w in warnings] == [(user, 80)]
        check_at(95)
        events.append(next_budget_event(channel))
        assert "1 session(s) ended" in check_at(100)
        events.append(next_budget_event(channel))
    assert [w["level"] for w in warnings] == [80, 95, 100]
    assert warnings[-1]["spend_usd"] >= CAP and warnings[-1]["cap_usd"] == CAP
    assert warnings[-1]["sessions"] == [{"session_id": str(mine.id), "project_id": "mine"}]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.end_reason) == (SessionStatus.ENDED, EndReason.BUDGET)
    assert mine.machine is not None and mine.machine.state == MachineState.DESTROYED
    assert theirs.status == SessionStatus.ACTIVE
    ended = [a for a in audits if a["action"] == "session.end"]
    assert [(a["actor_label"], a["target_id"], a["after"]["end_reason"]) for a in ended] == [
        ("system:budget", str(mine.id), "budget")
    ]
    assert [(e["data"]["level"], e["data"]["user_id"], e["session_id"]) for e in events] == [
        (level, str(user), str(mine.id)) for level in (80, 95, 100)
    ]


def test_a_jump_past_the_cap_ends_every_live_session_and_announces_once(
    django_capture_on_commit_callbacks: Any, warnings: list[dict[str, Any]]
) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP, max_concurrent_sessions=3)
    with time_machine.travel(T0, tick=False) as clock:
        first, second = live_session(user_id=user, project="first"), live_session(user_id=user, project="second")
        clock.move_to(at_percent(first, 50))  # two machines: together they are at 100 %
        with django_capture_on_commit_callbacks(execute=True):
            summary = tasks.enforce_budgets()
        clock.shift(timedelta(minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            again = tasks.enforce_budgets()
    assert "2 session(s) ended" in summary and again.endswith("0 warned, 0 session(s) ended")
    ended = PreviewSession.objects.filter(id__in=[first.id, second.id], end_reason=EndReason.BUDGET)
    assert ended.count() == 2
    assert [w["level"] for w in warnings] == [100]  # 80 and 95 recorded with it, announced once at the top
    assert len(warnings[0]["sessions"]) == 2
    assert set(BudgetNotice.objects.filter(user_id=user).values_list("level", flat=True)) == {80, 95, 100}


def test_the_quota_endpoint_shows_spend_projection_and_time_left(as_user: Any) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP)
    with time_machine.travel(T0, tick=False) as clock:
        client = as_user(user)
        idle = client.get("/api/v1/quota/").json()["budget"]
        session = live_session(user_id=user)
        clock.move_to(at_percent(session, 50))
        running = as_user(user).get("/api/v1/quota/").json()["budget"]  # a fresh token at the new time
    assert (idle["spend_usd"], idle["seconds_left"], idle["level"]) == ("0.0000", None, None)
    assert idle["period_end"].startswith("2026-12-01T00:00:00")
    assert session.machine is not None
    burn = machine_hourly_cost(session.machine)
    assert Decimal(running["burn_usd_per_hour"]) == burn.quantize(Decimal("0.0001"))
    assert Decimal(running["spend_usd"]) == (CAP / 2).quantize(Decimal("0.0001"))
    assert abs(running["seconds_left"] - int(CAP / 2 / burn * 3600)) <= 1
    assert Decimal(running["projected_month_usd"]) > CAP
    assert running["cap_usd"] == "0.10" and Decimal(running["percent"]) == Decimal("50.0")


@pytest.mark.django_db(transaction=True)
def test_three_checks_at_once_warn_once_and_end_each_session_once(warnings: list[dict[str, Any]]) -> None:
    require(connection.vendor == "postgresql", "needs concurrent connections (PostgreSQL, as in CI)")
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP, max_concurrent_sessions=3)
    with time_machine.travel(T0, tick=False):
        first = live_session(user_id=user, project="first")
        live_session(user_id=user, project="second")
    now = at_percent(first, 60)  # two machines: 120 % together
    barrier, counts = threading.Barrier(3), []

    def check() -> None:
        barrier.wait()
        try:
            counts.append(services.budgets_enforce(now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(c["ended"] for c in counts) == 2 and sum(c["warned"] for c in counts) == 1
    assert [w["level"] for w in warnings] == [100]
    assert PreviewSession.objects.filter(user_id=user, end_reason=EndReason.BUDGET).count() == 2
    assert BudgetNotice.objects.filter(user_id=user).count() == 3


def test_a_user_stopped_by_the_check_cannot_start_again_even_where_the_estimate_is_lower(
    as_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP)
    with time_machine.travel(T0, tick=False) as clock:
        session = live_session(user_id=user)
        assert session.machine is not None
        # Priced in Buenos Aires (x1.858): the exact spend runs ahead of the base-rate estimate.
        type(session.machine).objects.filter(id=session.machine.id).update(provider="fly", region="eze")
        session.machine.refresh_from_db()
        clock.move_to(at_percent(session, 100))
        with django_capture_on_commit_callbacks(execute=True):
            assert "1 session(s) ended" in tasks.enforce_budgets()
        refused = as_user(user).post("/api/v1/sessions/", {"project_id": "again"}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota.monthly_budget"
    assert Decimal(refused.json()["error"]["details"]["reasons"][0]["used"]) >= CAP

"""The dashboard's reads that are more than a query: the waterfall and the per-user month."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dashboard import selectors
from dashboard.tests.dashboard_setup import past_session
from sessions.models import PreviewSession, Quota

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_the_waterfall_places_each_step_and_splits_the_dev_server_off_the_agent() -> None:
    session = PreviewSession(
        user_id=uuid.uuid4(),
        project_id="w",
        status="active",
        created_at=T0,
        queued_at=T0,
        machine_created_at=T0 + timedelta(milliseconds=300),
        machine_started_at=T0 + timedelta(seconds=1),
        agent_ready_at=T0 + timedelta(seconds=9),
        boot_timings={"npm_install": 5.0, "dev_server_start": 1.5, "total": 8.0},
    )
    steps = selectors.session_waterfall(session)
    assert [s.label for s in steps] == [
        "queued",
        "machine created",
        "machine started",
        "agent ready",
        "dev server ready",
    ]
    assert [s.offset_ms for s in steps] == [0, 300, 1000, 2500, 9000]
    assert [s.duration_ms for s in steps[1:]] == [300, 700, 1500, 6500]
    assert steps[-1].percent == 72  # 6.5 s of the 9 s wait


def test_a_session_still_creating_has_its_later_steps_pending() -> None:
    session = PreviewSession(user_id=uuid.uuid4(), project_id="w", status="creating", created_at=T0, queued_at=T0)
    steps = selectors.session_waterfall(session)
    assert [s.at for s in steps[1:]] == [None, None, None, None]


def test_budget_used_compares_the_month_with_the_users_own_quota_or_the_default() -> None:
    own, other = uuid.uuid4(), uuid.uuid4()
    Quota.objects.create(user_id=own, monthly_budget_usd=2)
    Quota.objects.update_or_create(user_id=None, defaults={"monthly_budget_usd": 10})
    for user in (own, other):
        past_session(user, f"p-{user}", T0 - timedelta(hours=9), timedelta(hours=8))
    rows = {row.user_id: row for row in selectors.user_costs(now=T0)}
    assert (rows[str(own)].budget, rows[str(other)].budget) == (2, 10)
    assert rows[str(own)].budget_used == pytest.approx(5 * (rows[str(other)].budget_used or 0))
    assert rows[str(own)].machine_seconds == 8 * 3600 - 4  # started 4 s after creation

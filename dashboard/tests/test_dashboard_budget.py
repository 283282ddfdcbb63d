"""The budget line of the operator's session page, fed by the real budget check under frozen time."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from dashboard.models import AuditRecord
from machines.selectors import machine_hourly_cost
from sessions import tasks
from sessions.models import BudgetNotice, PreviewSession, Quota
from sessions.testing import live_session

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
CAP = Decimal("0.10")


def at_percent(session: PreviewSession, percent: int) -> datetime:
    assert session.machine is not None
    per_second = machine_hourly_cost(session.machine) / 3600
    return T0 + timedelta(seconds=math.ceil(CAP * percent / 100 / per_second))


def budget_line(client: Any, session: PreviewSession) -> str:
    page = client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    start = page.index("<dt>Budget</dt>")
    return page[start : page.index("</dd>", start)]


def test_the_session_page_shows_the_warning_and_then_the_budget_end(staff_client: Any) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, monthly_budget_usd=CAP)
    with time_machine.travel(T0, tick=False) as clock:
        session = live_session(user_id=user)
        assert "warning" not in budget_line(staff_client, session)
        clock.move_to(at_percent(session, 80))
        tasks.enforce_budgets()
        warned = budget_line(staff_client, session)
        clock.move_to(at_percent(session, 100))
        tasks.enforce_budgets()
        ended = budget_line(staff_client, session)
    assert 'data-budget="80"' in warned and "80 % warning sent" in warned
    assert "of $0.1000 this month (80.0%)" in warned and "the cap in" in warned
    assert "ended: monthly budget spent" in ended and "the cap in" not in ended
    record = AuditRecord.objects.get(action="session.end", target_id=str(session.id))
    assert (record.actor, record.actor_label, record.after["end_reason"]) == (None, "system:budget", "budget")


def test_budget_notices_are_listed_read_only_in_the_admin(admin_client: Any) -> None:
    notice = BudgetNotice.objects.create(
        user_id=uuid.uuid4(), month=T0.date().replace(day=1), level=80, spend_usd=Decimal("0.08"), cap_usd=CAP
    )
    listing = admin_client.get(reverse("admin:preview_sessions_budgetnotice_changelist")).content.decode()
    assert str(notice.user_id) in listing
    add = admin_client.get(reverse("admin:preview_sessions_budgetnotice_add"))
    assert add.status_code == 403

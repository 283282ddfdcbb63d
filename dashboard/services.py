"""Operator actions from the dashboard and the admin: end a session, edit a quota (kills are
``machines.services.machine_kill``).

Each writes an audit record (who, what, when, before and after) through ``machines.services.audit_record``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from machines.models import EventSource
from machines.services import audit_record
from sessions.models import EndReason, PreviewSession, Quota
from sessions.services import session_end


def session_end_by_operator(*, session: PreviewSession, operator: Any, now: datetime) -> bool:
    """End a live session for an operator (reason ``operator``) and record who did it."""
    before = {"status": session.status}
    ended = session_end(
        session=session, reason=EndReason.OPERATOR, now=now, detail=f"ended by {operator}", source=EventSource.OPERATOR
    )
    if ended:
        audit_record(
            actor=operator,
            action="session.end",
            target=session,
            before=before,
            after={"status": session.status, "end_reason": session.end_reason},
        )
    return ended


QUOTA_FIELDS = (
    "user_id",
    "max_concurrent_sessions",
    "max_session_seconds",
    "monthly_machine_seconds",
    "monthly_budget_usd",
    "max_memory_mb",
)


def _quota_values(quota: Quota | None) -> dict[str, Any]:
    if quota is None:
        return {}
    return {
        name: str(value) if value is not None else None for name in QUOTA_FIELDS for value in [getattr(quota, name)]
    }


def quota_save_by_operator(*, quota: Quota, operator: Any) -> Quota:
    """Save a quota edited in the admin and record the change (the values before and after)."""
    before = _quota_values(Quota.objects.filter(pk=quota.pk).first())
    with transaction.atomic():
        quota.updated_at = timezone.now()
        quota.save()
        action = "quota.update" if before else "quota.create"
        audit_record(actor=operator, action=action, target=quota, before=before, after=_quota_values(quota))
    return quota


def quota_delete_by_operator(*, quota: Quota, operator: Any) -> None:
    before = _quota_values(quota)
    with transaction.atomic():
        audit_record(actor=operator, action="quota.delete", target=quota, before=before, after={})
        quota.delete()

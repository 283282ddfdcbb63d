"""Operator actions from the dashboard and the admin: end a session, edit a quota or a flag (kills are
``machines.services.machine_kill``); and the audit trail's one writer.

Each action leaves one audit record (who, what, when, before and after) through ``velocity.audit.audit``,
the door the lower layers use too; ``audit_record_create`` is the receiver behind that door.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from dashboard.models import AuditRecord
from machines.models import EventSource
from sessions.models import EndReason, PreviewFlag, PreviewSession, Quota
from sessions.services import session_end, sessions_delete_finished
from velocity.audit import audit


def audit_record_create(
    *,
    actor: Any | None,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> AuditRecord:
    return AuditRecord.objects.create(
        actor=actor,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


def audit_record_on_signal(sender: Any, *, signal: Any, **record: Any) -> None:
    """The receiver of ``velocity.audit.audited``, connected by ``DashboardConfig.ready``."""
    audit_record_create(**record)


def session_end_by_operator(*, session: PreviewSession, operator: Any, now: datetime) -> bool:
    """End a live session for an operator (reason ``operator``) and record who did it."""
    before = {"status": session.status}
    ended = session_end(
        session=session, reason=EndReason.OPERATOR, now=now, detail=f"ended by {operator}", source=EventSource.OPERATOR
    )
    if ended:
        audit(
            actor=operator,
            action="session.end",
            target=session,
            before=before,
            after={"status": session.status, "end_reason": session.end_reason},
        )
    return ended


def session_delete_by_operator(*, session: PreviewSession, operator: Any) -> bool:
    """Delete a finished session's row for an operator (announced as a DELETE, audited); a live one is kept."""
    with transaction.atomic():
        before = {"status": session.status, "project_id": session.project_id, "user_id": str(session.user_id)}
        deleted = sessions_delete_finished(session_ids=[session.id]) == 1
        if deleted:
            audit(actor=operator, action="session.delete", target=session, before=before, after={})
    return deleted


def quota_save_by_operator(*, quota: Quota, operator: Any) -> Quota:
    """Save a quota edited in the admin and record the change (the values before and after)."""
    return _save_audited(quota, operator=operator, kind="quota")


def quota_delete_by_operator(*, quota: Quota, operator: Any) -> None:
    _delete_audited(quota, operator=operator, kind="quota")


def flag_save_by_operator(*, flag: PreviewFlag, operator: Any) -> PreviewFlag:
    """Save a flag added or edited in the admin (its form or the list's ``target`` column), audited."""
    return _save_audited(flag, operator=operator, kind="flag")


def flag_delete_by_operator(*, flag: PreviewFlag, operator: Any) -> None:
    _delete_audited(flag, operator=operator, kind="flag")


Edited = TypeVar("Edited", Quota, PreviewFlag)


def _save_audited(row: Edited, *, operator: Any, kind: str) -> Edited:
    """Save an operator's edit of ``row`` with ``updated_at`` and one ``<kind>.create|update`` record."""
    previous = type(row).objects.filter(pk=row.pk).first()
    before = previous.audit_values() if previous else {}
    with transaction.atomic():
        row.updated_at = timezone.now()
        row.save()
        action = f"{kind}.update" if before else f"{kind}.create"
        audit(actor=operator, action=action, target=row, before=before, after=row.audit_values())
    return row


def _delete_audited(row: Quota | PreviewFlag, *, operator: Any, kind: str) -> None:
    with transaction.atomic():
        audit(actor=operator, action=f"{kind}.delete", target=row, before=row.audit_values(), after={})
        row.delete()

"""Operator actions from the dashboard and the admin: end a session, act on a user (end all their sessions,
block or unblock their new ones, set or reset their quota), edit a quota or a flag (kills are
``machines.services.machine_kill``); and the audit trail's one writer.

Each action leaves one audit record (who, what, when, before and after) through ``velocity.audit.audit``,
the door the lower layers use too; ``audit_record_create`` is the receiver behind that door.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from dashboard.models import AuditRecord
from machines.models import EventSource
from sessions.models import LIVE_STATUSES, EndReason, PreviewFlag, PreviewSession, Quota
from sessions.services import (
    quota_reset,
    quota_set,
    session_end,
    sessions_delete_finished,
    user_block,
    user_unblock,
)
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


def session_end_by_operator(*, session: PreviewSession, operator: Any, now: datetime, reason: str = "") -> bool:
    """End a live session for an operator (reason ``operator``) and record who did it and why."""
    reason = reason.strip()[:REASON_MAX]
    before = {"status": session.status}
    ended = session_end(
        session=session,
        reason=EndReason.OPERATOR,
        now=now,
        detail=_ended_by(operator, reason),
        source=EventSource.OPERATOR,
    )
    if ended:
        after = {"status": session.status, "end_reason": session.end_reason, **_reason(reason)}
        audit(actor=operator, action="session.end", target=session, before=before, after=after)
    return ended


REASON_MAX = 400  # leaves room in ``end_detail`` (500) for "ended by <operator>: "


def _ended_by(operator: Any, reason: str) -> str:
    return f"ended by {operator}: {reason}" if reason else f"ended by {operator}"


def _reason(reason: str) -> dict[str, str]:
    """The operator's reason as the audit record keeps it (the audit page shows it apart from the diff)."""
    return {"reason": reason} if reason else {}


def user_sessions_end_all(*, user_id: uuid.UUID, operator: Any, now: datetime, reason: str = "") -> int:
    """End every live session of one user (each through ``session_end``: machine destroyed, announced), and
    record it once, against the user; returns how many ended."""
    reason = reason.strip()[:REASON_MAX]
    live = list(PreviewSession.objects.filter(user_id=user_id, status__in=LIVE_STATUSES).order_by("created_at"))
    detail = _ended_by(operator, reason or "all of the user's sessions")
    ended = [
        s
        for s in live
        if session_end(session=s, reason=EndReason.OPERATOR, now=now, detail=detail, source=EventSource.OPERATOR)
    ]
    if ended:
        names = ", ".join(str(s.id)[:8] for s in ended)
        after = {"live_sessions": len(live) - len(ended), "ended": names, **_reason(reason)}
        audit(
            actor=operator,
            action="user.end_all",
            target=("user", str(user_id)),
            before={"live_sessions": len(live)},
            after=after,
        )
    return len(ended)


def user_block_by_operator(*, user_id: uuid.UUID, operator: Any, now: datetime, reason: str = "") -> bool:
    return user_block(user_id=user_id, reason=reason.strip(), actor=operator, now=now)


def user_unblock_by_operator(*, user_id: uuid.UUID, operator: Any, reason: str = "") -> bool:
    return user_unblock(user_id=user_id, reason=reason.strip(), actor=operator)


def user_stop_by_operator(*, user_id: uuid.UUID, operator: Any, now: datetime, reason: str = "") -> tuple[bool, int]:
    """Stop a user's spike: block new sessions first (so none starts meanwhile), then end the live ones.
    Two records, one per change (``user.block``, ``user.end_all``); returns (newly blocked, sessions ended)."""
    blocked = user_block_by_operator(user_id=user_id, operator=operator, now=now, reason=reason)
    return blocked, user_sessions_end_all(user_id=user_id, operator=operator, now=now, reason=reason)


def quota_set_by_operator(*, user_id: uuid.UUID, values: dict[str, Any], operator: Any) -> Quota:
    """Save the user's override from the user page (created on first save), one audit record."""
    return quota_set(user_id=user_id, values=values, actor=operator)[0]


def quota_reset_by_operator(*, user_id: uuid.UUID, operator: Any) -> bool:
    """Delete the user's override: the default quota applies again (audited); False when there was none."""
    return quota_reset(user_id=user_id, actor=operator)


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

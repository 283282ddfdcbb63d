"""Operator actions from the dashboard: end a session, kill a machine, edit a quota, and the audit trail.

The audit record model, ``audit_record`` and ``machine_kill`` belong to the machines app (issue 6).
Until they are merged, ``audit`` logs the same facts and the kill is done here; once they exist the
calls go to them (``audit`` and ``machine_kill_by_operator`` are the only places that look).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from machines import services as machine_services
from machines.models import EventSource, Machine
from sessions.models import LIVE_STATUSES, EndReason, PreviewSession, Quota
from sessions.services import session_end

logger = logging.getLogger(__name__)


def audit(*, actor: Any, action: str, target: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Write one audit record (who, what, when, before and after)."""
    record = getattr(machine_services, "audit_record", None)
    if record is None:
        logger.info("audit", extra={"actor": str(actor), "action": action, "target": str(target)})
        return
    record(actor=actor, action=action, target=target, before=before, after=after)


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


def machine_kill_by_operator(*, machine_id: uuid.UUID, operator: Any) -> bool:
    """Destroy a machine now for an operator; its live session ends as ``operator`` first, so the
    agent's own exit report (it dies with the machine) cannot record the end as a failure."""
    kill = getattr(machine_services, "machine_kill", None)
    if kill is not None:  # the machines app's own operator kill (issue 6) does the same and audits it
        return bool(kill(machine_id=machine_id, actor=operator, now=timezone.now()))
    machine = Machine.objects.filter(id=machine_id).first()
    if machine is None or machine.is_gone:
        return False
    before = {"state": machine.state}
    for session in PreviewSession.objects.filter(machine=machine, status__in=LIVE_STATUSES):
        session_end(
            session=session,
            reason=EndReason.OPERATOR,
            now=timezone.now(),
            detail="machine killed",
            source=EventSource.OPERATOR,
        )
    machine_services.machine_destroy(
        machine_id=machine.id, source=EventSource.OPERATOR, detail={"operator": str(operator)}
    )
    machine.refresh_from_db(fields=["state"])
    if machine.state == before["state"]:
        return False
    audit(actor=operator, action="machine.kill", target=machine, before=before, after={"state": machine.state})
    return True


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
        audit(actor=operator, action=action, target=quota, before=before, after=_quota_values(quota))
    return quota


def quota_delete_by_operator(*, quota: Quota, operator: Any) -> None:
    before = _quota_values(quota)
    with transaction.atomic():
        audit(actor=operator, action="quota.delete", target=quota, before=before, after={})
        quota.delete()

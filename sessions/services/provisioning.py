"""Giving a queued session a machine: a warm one from the pool, or a new one."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from machines.providers.base import ProviderError
from machines.services import (
    machine_claim_warm,
    machine_destroy,
    machine_launch,
    machine_pool_enqueue_refill,
    machine_prepare,
)
from sessions.models import EndReason, PreviewSession, SessionStatus
from sessions.services.lifecycle import _release_machine, session_end, session_mark_step

logger = logging.getLogger(__name__)


def session_provision(*, session_id: uuid.UUID | str, now: datetime) -> str:
    """Give a queued session a running machine; the agent's ``ready`` event then activates it.

    A started machine from the warm pool is claimed first (its agent learns the project from its
    assignment poll); otherwise one is created. Any launch failure ends the session as ``failed`` with the
    reason, and its machine is destroyed.
    """
    session = PreviewSession.objects.filter(id=session_id, status=SessionStatus.CREATING, machine__isnull=True).first()
    if session is None:
        return f"session {session_id}: nothing to provision"
    return _claim_warm_machine(session, now=now) or _provision_new_machine(session, now=now)


def _claim_warm_machine(session: PreviewSession, *, now: datetime) -> str | None:
    """A summary once a warm machine is this session's; None when the pool has none to give."""
    with transaction.atomic():
        machine = machine_claim_warm(memory_mb=session.memory_mb, session_id=str(session.id), now=now)
        if machine is None:
            return None
        claimed = PreviewSession.objects.filter(
            id=session.id, status=SessionStatus.CREATING, machine__isnull=True
        ).update(machine=machine, machine_created_at=now, machine_started_at=now, updated_at=now)
        if not claimed:
            transaction.set_rollback(True)  # the machine goes back to the pool untouched
            return f"session {session.id}: ended or claimed before provisioning"
        machine_pool_enqueue_refill()
    logger.info("session got a warm machine", extra={"session_id": str(session.id), "machine_id": str(machine.id)})
    return f"session {session.id}: warm machine {machine.id} claimed"


def _provision_new_machine(session: PreviewSession, *, now: datetime) -> str:
    session_id = session.id
    machine, spec = machine_prepare(session=session, memory_mb=session.memory_mb)
    claimed = PreviewSession.objects.filter(id=session.id, status=SessionStatus.CREATING, machine__isnull=True).update(
        machine=machine, machine_created_at=machine.created_at, updated_at=now
    )
    if not claimed:
        _discard_machine(machine.id)
        return f"session {session_id}: ended or claimed before provisioning"
    session.machine = machine
    try:
        machine_launch(machine=machine, spec=spec)
    except ProviderError as exc:
        session_end(
            session=session, reason=EndReason.FAILED, now=timezone.now(), detail=f"machine launch failed: {exc}"
        )
        return f"session {session_id}: failed ({exc})"
    session_mark_step(session_id=session.id, step="machine_started_at", now=timezone.now())
    session.refresh_from_db(fields=["status"])
    if not session.is_live:
        _release_machine(session, source="api", reason="ended during provisioning")
    return f"session {session_id}: machine {machine.id} started"


def _discard_machine(machine_id: uuid.UUID) -> None:
    machine_destroy(machine_id=machine_id, source="api", detail={"reason": "not needed"})

"""Giving a queued session a machine: a warm one from the pool, or a new one."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from machines.models import Machine
from machines.providers.base import ProviderError
from machines.services import (
    machine_claim_warm,
    machine_destroy,
    machine_launch,
    machine_pool_enqueue_refill,
    machine_prepare,
)
from sessions import wakeups
from sessions.models import EndReason, PreviewSession, SessionStatus
from sessions.services.lifecycle import _release_machine, session_end, session_mark_step

logger = logging.getLogger(__name__)

PROVISION_TASK = "sessions.tasks.provision_session"
# How many undelivered warm claims one round hands back (the rest wait for the next round).
REPROVISION_BATCH = 100


def session_enqueue_provisioning(session_id: uuid.UUID) -> None:
    """Queue the session for a machine (the cold path: the task cluster creates one)."""
    async_task(PROVISION_TASK, str(session_id), task_name=f"provision-{session_id}", group="provisioning")


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
    machine = session_claim_warm(session=session, now=now)
    return None if machine is None else f"session {session.id}: warm machine {machine.id} claimed"


def session_claim_warm(*, session: PreviewSession, now: datetime) -> Machine | None:
    """Give ``session`` a started warm machine of its size, inside the caller's transaction; None when the pool
    has none, or when the session was ended or given a machine meanwhile (the machine then goes back untouched).

    On commit the machine's waiting agent is woken (``sessions.wakeups``), so it learns its project at once.
    """
    with transaction.atomic():
        machine = machine_claim_warm(memory_mb=session.memory_mb, session_id=str(session.id), now=now)
        if machine is None:
            return None
        claimed = PreviewSession.objects.filter(
            id=session.id, status=SessionStatus.CREATING, machine__isnull=True
        ).update(machine=machine, machine_created_at=now, machine_started_at=now, updated_at=now)
        if not claimed:
            transaction.set_rollback(True)  # the machine goes back to the pool untouched
            return None
        transaction.on_commit(lambda: wakeups.assignment_wake(machine.id))  # first: the agent waits on it
        machine_pool_enqueue_refill()
    session.machine, session.machine_created_at, session.machine_started_at = machine, now, now
    logger.info("session got a warm machine", extra={"session_id": str(session.id), "machine_id": str(machine.id)})
    return machine


def session_warm_machine_for_new(*, session_id: uuid.UUID, memory_mb: int, now: datetime) -> Machine | None:
    """A started warm machine claimed for a session this transaction is about to insert (so the row is written
    with it, in no extra round trip); None when the pool has none. Nothing can end a row that does not exist
    yet, so unlike ``session_claim_warm`` there is no savepoint to give the machine back: a create that fails
    rolls the claim back with it. On a hit the machine's waiting agent is woken on commit, before anything the
    caller registers after this call (the caller asks the pool to top up, hit or miss)."""
    machine = machine_claim_warm(memory_mb=memory_mb, session_id=str(session_id), now=now)
    if machine is not None:
        transaction.on_commit(lambda: wakeups.assignment_wake(machine.id))  # first: the agent waits on it
        logger.info("session got a warm machine", extra={"session_id": str(session_id), "machine_id": str(machine.id)})
    return machine


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


def session_reprovision_undelivered(*, now: datetime, timeout: float) -> int:
    """Hand back the warm claims whose agent never picked its assignment up: no report from it ``timeout``
    seconds after the claim (a lost wake-up is only a delay, so this is an agent frozen or gone before it
    learnt its project). The session keeps its place (``creating``) and is queued for another machine; the
    silent machine is destroyed in the task cluster. Returns how many were handed back.

    A warm claim is told from a new machine by its timestamps: it gives the session a machine already started
    (``machine_created_at`` = ``machine_started_at``, the claim's moment), which a new machine never does.
    """
    stalled = PreviewSession.objects.filter(
        status=SessionStatus.CREATING,
        machine__isnull=False,
        machine_started_at__lt=now - timedelta(seconds=timeout),
        machine_created_at=F("machine_started_at"),
        agent_heartbeat__isnull=True,
    ).values_list("id", "machine_id")
    return sum(_hand_back(session_id, machine_id, now=now) for session_id, machine_id in stalled[:REPROVISION_BATCH])


def _hand_back(session_id: uuid.UUID, machine_id: uuid.UUID, *, now: datetime) -> bool:
    with transaction.atomic():
        detached = PreviewSession.objects.filter(
            id=session_id, status=SessionStatus.CREATING, machine_id=machine_id
        ).update(machine=None, machine_created_at=None, machine_started_at=None, updated_at=now)
        if not detached:
            return False
        reason = "warm agent did not pick up its assignment"
        transaction.on_commit(lambda: _destroy_later(machine_id, reason))
        transaction.on_commit(lambda: session_enqueue_provisioning(session_id))
    logger.warning("warm claim not picked up; provisioning again", extra={"session_id": str(session_id)})
    return True


def _destroy_later(machine_id: uuid.UUID, reason: str) -> None:
    """In the task cluster: a frozen agent's machine may take its whole stop grace to go."""
    async_task(
        machine_destroy,
        machine_id=machine_id,
        source="schedule",
        detail={"reason": reason},
        task_name=f"release-{machine_id}",
    )

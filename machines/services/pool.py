"""The warm pool: machines started ahead of demand, without a project, claimed by sessions in one step.

A warm machine's agent long-polls ``GET /api/v1/agent/assignment/`` until a session claims it; the
claim is a row lock skipped by other claimers (PostgreSQL) plus a conditional update, so two sessions
never get the same machine. Refills run under an instance lock, so two orchestrators do not overfill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from machines.models import EventSource, Machine, MachineEvent, MachineState
from machines.pool_sizing import PoolTarget, surplus_to_destroy
from machines.providers.base import ProviderError
from machines.services.lifecycle import machine_create, machine_destroy
from machines.services.pool_suspend import pool_balance_suspended
from machines.services.pool_target import pool_enabled, pool_target_now
from velocity.locks import instance_lock

logger = logging.getLogger(__name__)

REFILL_TASK = "machines.tasks.refill_warm_pool"
POOLING_STATES = (MachineState.CREATED, MachineState.STARTING, MachineState.STARTED)
CLAIM_ATTEMPTS = 3
MAX_CREATES_PER_REFILL = 50  # one refill's bound; the next claim or the schedule continues


def machine_claim_warm(*, memory_mb: int, session_id: str, now: datetime) -> Machine | None:
    """Take one started warm machine of this size out of the pool for ``session_id``; None when the pool is empty.

    Runs inside the caller's transaction, so the claim commits (or rolls back) with the caller's use of it.
    """
    candidates = Machine.objects.filter(
        is_warm=True, provider=settings.MACHINE_PROVIDER, memory_mb=memory_mb, state=MachineState.STARTED
    ).order_by("created_at")
    for _ in range(CLAIM_ATTEMPTS):
        machine = candidates.select_for_update(skip_locked=True).first()
        if machine is None:
            return None
        won = Machine.objects.filter(id=machine.id, is_warm=True, state=MachineState.STARTED).update(
            is_warm=False, assigned_at=now, updated_at=now
        )
        if won:
            machine.is_warm, machine.assigned_at = False, now
            MachineEvent.objects.create(
                machine=machine,
                from_state=machine.state,
                to_state=machine.state,
                source=EventSource.API,
                detail={"claimed_by_session": session_id},
                at=now,
            )
            logger.info("warm machine claimed", extra={"machine_id": str(machine.id), "session_id": session_id})
            return machine
    return None


def machine_pool_enqueue_refill() -> None:
    """After a claim commits, top the pool up again (no-op when the pool is off)."""
    if not pool_enabled():
        return
    transaction.on_commit(lambda: async_task(REFILL_TASK, task_name="refill-warm-pool", group="pool"))


def machine_pool_refill(
    *,
    size: int,
    memory_mb: int,
    now: datetime | None = None,
    min_age_seconds: float = 0,
    hard_limit: int | None = None,
    retarget: Callable[[], int] | None = None,
) -> tuple[int, int]:
    """Make the pool hold ``size`` warm machines: (created, destroyed). Skipped while another instance refills.

    Shrinking destroys the oldest extra machines, sparing those younger than ``min_age_seconds`` (so the
    pool does not flap between bursts) unless the pool is past ``hard_limit`` (the budget's cap). Growing
    creates one machine at a time until the pool holds ``size``, asking ``retarget`` for the size again
    after each: during a burst, claims drain the pool while it grows, and refills enqueued meanwhile
    find the lock held and skip, so this one keeps going.
    """
    with instance_lock("machines.pool_refill") as held:
        if not held:
            return 0, 0
        destroyed = _shrink(size, now or timezone.now(), min_age_seconds, hard_limit)
        _balance(size)  # resume suspended machines first: far quicker than new ones
        created = 0
        while created < MAX_CREATES_PER_REFILL and _pooled().count() < size:
            if not _create_one(memory_mb):
                break
            created += 1
            size = retarget() if retarget else size
        _balance(size)  # and refill the suspended reserve from the newest started machines
        return created, destroyed


def _balance(size: int) -> None:
    if settings.WARM_POOL_SUSPENDED > 0 or _pooled().filter(state=MachineState.SUSPENDED).exists():
        resumed, suspended = pool_balance_suspended(target=size)
        if resumed or suspended:
            logger.info("warm pool balanced", extra={"resumed": resumed, "suspended": suspended})


def _pooled() -> QuerySet[Machine]:
    """The pool as sized: warm machines booting, started or suspended (claims take only started ones)."""
    states = (*POOLING_STATES, MachineState.SUSPENDED)
    return Machine.objects.filter(is_warm=True, provider=settings.MACHINE_PROVIDER, state__in=states)


def _shrink(size: int, now: datetime, min_age_seconds: float, hard_limit: int | None) -> int:
    pooled = list(_pooled().order_by("created_at").values_list("id", "created_at"))
    ages = [(now - created_at).total_seconds() for _, created_at in pooled]
    doomed = surplus_to_destroy(ages, target=size, min_age_seconds=min_age_seconds, hard_limit=hard_limit)
    return sum(
        machine_destroy(machine_id=pooled[index][0], source=EventSource.SCHEDULE, detail={"reason": "pool shrunk"})
        for index in doomed
    )


def _create_one(memory_mb: int) -> bool:
    try:
        machine_create(session=None, memory_mb=memory_mb, source=EventSource.SCHEDULE)
    except ProviderError as exc:
        logger.warning("warm machine create failed", extra={"error": str(exc)})
        return False
    return True


def machine_pool_autosize(*, now: datetime, memory_mb: int) -> tuple[PoolTarget, int, int]:
    """Bring the pool to the target demand, floor, ceiling and budget set: (target, created, destroyed).

    The target is computed at ``now`` and again (at the clock's time) after each machine created.
    """
    target = pool_target_now(now=now, memory_mb=memory_mb)
    created, destroyed = machine_pool_refill(
        size=target.size,
        memory_mb=memory_mb,
        now=now,
        min_age_seconds=settings.POOL_DEMAND_WINDOW_SECONDS,
        hard_limit=target.budget_cap,
        retarget=lambda: pool_target_now(now=timezone.now(), memory_mb=memory_mb).size,
    )
    return target, created, destroyed

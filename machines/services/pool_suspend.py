"""Suspended warm machines: a reserve that pays only storage and resumes in a few hundred milliseconds.

The pool keeps ``WARM_POOL_SUSPENDED`` of its target suspended. Claims take only started machines; when
the started ones run short, the refill resumes suspended ones before it creates any (a resume is far
quicker than a new machine), and tops the suspended reserve up again from the newest started machines.
"""

from __future__ import annotations

import logging

from django.conf import settings

from machines.models import EventSource, Machine, MachineState
from machines.providers import get_provider
from machines.providers.base import MachineState as ProviderState
from machines.providers.base import ProviderError
from machines.services.lifecycle import START_TIMEOUT_SECONDS, machine_transition

logger = logging.getLogger(__name__)


def warm(state: str) -> list[Machine]:
    """This provider's warm machines in ``state``, oldest first."""
    return list(
        Machine.objects.filter(is_warm=True, provider=settings.MACHINE_PROVIDER, state=state).order_by("created_at")
    )


def machine_suspend(*, machine: Machine) -> bool:
    """Suspend a started warm machine (its cost drops to storage); False when the provider refused."""
    try:
        get_provider(machine.provider).suspend(machine.provider_machine_id)
    except ProviderError as exc:
        logger.warning("warm machine suspend failed", extra={"machine_id": str(machine.id), "error": str(exc)})
        return False
    return machine_transition(
        machine=machine, to_state=MachineState.SUSPENDED, source=EventSource.SCHEDULE, detail={"reason": "pool reserve"}
    )


def machine_resume(*, machine: Machine) -> bool:
    """Start a suspended warm machine again and wait until it runs; False when the provider failed."""
    provider = get_provider(machine.provider)
    try:
        provider.start(machine.provider_machine_id)
        provider.wait_for_state(machine.provider_machine_id, ProviderState.STARTED, timeout=START_TIMEOUT_SECONDS)
    except ProviderError as exc:
        logger.warning("warm machine resume failed", extra={"machine_id": str(machine.id), "error": str(exc)})
        return False
    return machine_transition(
        machine=machine, to_state=MachineState.STARTED, source=EventSource.SCHEDULE, detail={"reason": "pool resume"}
    )


def pool_balance_suspended(*, target: int) -> tuple[int, int]:
    """Keep ``WARM_POOL_SUSPENDED`` (at most ``target``) of the pool suspended and the rest started.

    Returns (resumed, suspended). Resumes the oldest suspended machines while fewer than their share
    are started; suspends the newest started ones while the reserve is short and started ones are spare.
    """
    reserve = min(settings.WARM_POOL_SUSPENDED, target)
    started, suspended = warm(MachineState.STARTED), warm(MachineState.SUSPENDED)
    short = max(target - reserve - len(started), 0)
    resumed = sum(machine_resume(machine=machine) for machine in suspended[:short])
    spare = max(len(started) + resumed - (target - reserve), 0)
    wanted = max(reserve - (len(suspended) - resumed), 0)
    newest_first = list(reversed(started))
    frozen = sum(machine_suspend(machine=machine) for machine in newest_first[: min(spare, wanted)])
    return resumed, frozen

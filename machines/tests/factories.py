"""Machines and sessions in a given history, written through the lifecycle services."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from machines.models import EventSource, Machine, MachineEvent, MachineState
from machines.services import machine_transition


def machine_with_history(
    history: Sequence[tuple[str, datetime]],
    *,
    provider: str = "local",
    provider_machine_id: str = "",
    region: str = "local",
    memory_mb: int = 512,
    is_warm: bool = False,
    assigned_at: datetime | None = None,
    app: str = "",
) -> Machine:
    """A machine created at ``history[0]``'s time that went through the other ``(state, at)`` steps."""
    created_at = history[0][1]
    machine = Machine.objects.create(
        provider=provider,
        provider_machine_id=provider_machine_id or uuid.uuid4().hex[:14],
        region=region,
        memory_mb=memory_mb,
        is_warm=is_warm,
        assigned_at=assigned_at,
        app=app,
        created_at=created_at,
        updated_at=created_at,
    )
    MachineEvent.objects.create(
        machine=machine, from_state="", to_state=MachineState.CREATED, source=EventSource.API, at=created_at
    )
    for state, at in history[1:]:
        assert machine_transition(
            machine=machine, to_state=state, source=EventSource.PROVIDER, from_states=MachineState.values, now=at
        )
    return machine

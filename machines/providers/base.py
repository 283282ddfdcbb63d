"""The provider-neutral machine interface the orchestrator codes against.

A provider runs preview machines somewhere (Fly Machines in production, local processes in
development). Everything above this module speaks only in these types, so a provider can be
swapped without touching the lifecycle code.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

MANAGED_KEY = "velocity_managed"
SESSION_KEY = "velocity_session_id"
PROJECT_KEY = "velocity_project_id"
USER_KEY = "velocity_user_id"


class MachineState(StrEnum):
    """Fly's persistent and transient machine states, the ones the contract names."""

    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"


# Fly reports more states than the contract names; each maps to the contract state it behaves
# like for the orchestrator (what it costs, whether it may still serve, whether it is gone).
_STATE_ALIASES: Mapping[str, MachineState] = {
    "creating": MachineState.CREATED,
    "restarting": MachineState.STARTING,
    "updating": MachineState.STARTING,
    "replacing": MachineState.STARTING,
    "suspending": MachineState.STOPPING,
    "launch_failed": MachineState.FAILED,
    "replaced": MachineState.DESTROYED,
    "migrated": MachineState.STARTED,
}

LIVE_STATES = frozenset(
    {
        MachineState.CREATED,
        MachineState.STARTING,
        MachineState.STARTED,
        MachineState.STOPPING,
        MachineState.STOPPED,
        MachineState.SUSPENDED,
        MachineState.FAILED,
    }
)


def parse_state(raw: str) -> MachineState | None:
    """Map a provider's state string to a contract state; None when it is unknown."""
    try:
        return MachineState(raw)
    except ValueError:
        return _STATE_ALIASES.get(raw)


def preview_metadata(*, session_id: str, project_id: str, user_id: str) -> dict[str, str]:
    """The metadata that tags a machine as a Velocity preview of one session."""
    return {
        MANAGED_KEY: "true",
        SESSION_KEY: session_id,
        PROJECT_KEY: project_id,
        USER_KEY: user_id,
    }


@dataclass(frozen=True)
class Guest:
    cpu_kind: str = "shared"
    cpus: int = 1
    memory_mb: int = 512


@dataclass(frozen=True)
class MachineSpec:
    """What to create. ``name`` must be deterministic (derived from the session) so that a
    retried create can find the machine an earlier, ambiguous attempt may have made."""

    name: str
    image: str | None = None
    guest: Guest | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None


@dataclass(frozen=True)
class ProviderMachine:
    id: str
    name: str
    state: MachineState
    raw_state: str
    region: str | None = None
    private_ip: str | None = None
    private_address: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    guest: Guest | None = None
    created_at: datetime | None = None
    version: str | None = None

    @property
    def is_managed(self) -> bool:
        return self.metadata.get(MANAGED_KEY) == "true"


class ProviderError(Exception):
    """A provider call failed. ``status`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


class NotFound(ProviderError):
    pass


class Conflict(ProviderError):
    pass


class BadRequest(ProviderError):
    pass


class Unavailable(ProviderError):
    """The provider could not be reached or answered 5xx, after retries."""


class RateLimited(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after


class WaitTimeout(ProviderError, TimeoutError):
    """The machine did not reach the wanted state within the caller's timeout."""


class MachineProvider(Protocol):
    def create(self, spec: MachineSpec) -> ProviderMachine: ...

    def start(self, machine_id: str) -> None: ...

    def stop(self, machine_id: str) -> None: ...

    def restart(self, machine_id: str) -> None:
        """Kill the machine's processes at once and start them again, on the same machine (same address,
        same files where the provider keeps them): what a hung agent needs, which ignores polite signals."""
        ...

    def suspend(self, machine_id: str) -> None:
        """Freeze a started machine with its memory, so that ``start`` resumes it where it was (a warm pool
        machine then pays only its storage); on Fly the resume takes a few hundred milliseconds."""
        ...

    def destroy(self, machine_id: str, *, force: bool = True) -> None:
        """Destroy the machine; one that is already gone is not an error."""
        ...

    def get(self, machine_id: str) -> ProviderMachine: ...

    def list(self, metadata: Mapping[str, str] | None = None) -> builtins.list[ProviderMachine]:
        """Machines whose metadata contains every given key and value."""
        ...

    def wait_for_state(
        self,
        machine_id: str,
        state: MachineState,
        *,
        timeout: float,
        version: str | None = None,
    ) -> MachineState:
        """Block until the machine is in ``state``; raise ``WaitTimeout`` after ``timeout`` s."""
        ...

"""A provider that reports the outcome of every call, so the dashboard can say when the provider last
answered and last failed (``machines.services.provider_health`` stores it).

The provider modules know nothing of the database: the observer is a callback ``get_provider`` passes in.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping
from typing import Any

from machines.providers.base import (
    MachineProvider,
    MachineSpec,
    MachineState,
    ProviderError,
    ProviderMachine,
    RateLimited,
    Unavailable,
)

logger = logging.getLogger(__name__)

# (provider kind, call name, the exception or None)
CallObserver = Callable[[str, str, BaseException | None], None]


def is_provider_failure(error: BaseException) -> bool:
    """Did the provider fail to serve (down, overloaded, 5xx, broken), rather than answer "no"?

    A 404, a conflict, a refused request or a wait running out are answers: the provider is working.
    """
    if isinstance(error, Unavailable | RateLimited):
        return True
    if isinstance(error, ProviderError):
        return error.status is not None and error.status >= 500
    return True


class ObservedProvider:
    """Forwards every call to ``inner`` and tells ``observe`` how it went; anything else passes through."""

    def __init__(self, inner: MachineProvider, *, kind: str, observe: CallObserver) -> None:
        self.inner, self.kind, self.observe = inner, kind, observe

    def __getattr__(self, name: str) -> Any:  # provider-specific helpers (the local provider's address())
        return getattr(self.inner, name)

    def create(self, spec: MachineSpec) -> ProviderMachine:
        return self._call("create", lambda: self.inner.create(spec))

    def start(self, machine_id: str) -> None:
        self._call("start", lambda: self.inner.start(machine_id))

    def stop(self, machine_id: str) -> None:
        self._call("stop", lambda: self.inner.stop(machine_id))

    def suspend(self, machine_id: str) -> None:
        self._call("suspend", lambda: self.inner.suspend(machine_id))

    def restart(self, machine_id: str) -> None:
        self._call("restart", lambda: self.inner.restart(machine_id))

    def destroy(self, machine_id: str, *, force: bool = True) -> None:
        self._call("destroy", lambda: self.inner.destroy(machine_id, force=force))

    def get(self, machine_id: str) -> ProviderMachine:
        return self._call("get", lambda: self.inner.get(machine_id))

    def list(self, metadata: Mapping[str, str] | None = None) -> builtins.list[ProviderMachine]:
        return self._call("list", lambda: self.inner.list(metadata))

    def wait_for_state(
        self, machine_id: str, state: MachineState, *, timeout: float, version: str | None = None
    ) -> MachineState:
        return self._call(
            "wait_for_state", lambda: self.inner.wait_for_state(machine_id, state, timeout=timeout, version=version)
        )

    def _call(self, name: str, call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except BaseException as exc:
            self._report(name, exc)
            raise
        self._report(name, None)
        return result

    def _report(self, name: str, error: BaseException | None) -> None:
        try:
            self.observe(self.kind, name, error)
        except Exception:  # reporting must never change a call's outcome
            logger.exception("provider call observer failed", extra={"provider": self.kind, "call": name})

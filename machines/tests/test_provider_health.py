"""When the provider last answered and last failed: recorded around every call, read by the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from machines.models import ProviderHealth
from machines.providers import get_provider
from machines.providers.base import (
    BadRequest,
    MachineProvider,
    MachineState,
    NotFound,
    RateLimited,
    Unavailable,
    WaitTimeout,
)
from machines.providers.observed import ObservedProvider, is_provider_failure
from machines.selectors import provider_health
from machines.services.provider_health import provider_health_reset
from machines.testing.fly_fake import FakeFly, Fault


@pytest.fixture(autouse=True)
def no_throttle() -> Iterator[None]:
    provider_health_reset()
    yield
    provider_health_reset()


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (Unavailable("down"), True),
        (RateLimited("slow down"), True),
        (OSError("disk"), True),
        (NotFound("gone", status=404), False),
        (BadRequest("no", status=400), False),
        (WaitTimeout("still starting"), False),
    ],
)
def test_only_a_provider_that_cannot_serve_counts_as_failing(error: Exception, failure: bool) -> None:
    assert is_provider_failure(error) is failure


@pytest.mark.django_db
def test_a_successful_call_is_recorded_for_every_process_to_read(
    local: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert get_provider().list() == []
    health = provider_health("local")
    assert health is not None and health.last_ok_call == "list" and health.last_failure_at is None
    assert not health.failing


@pytest.mark.django_db
def test_a_failing_provider_is_recorded_with_the_error_and_the_call(
    fly_api: FakeFly, django_capture_on_commit_callbacks: Any
) -> None:
    fly_api.inject("list", *[Fault(status=503)] * 10)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Unavailable):
        get_provider().list()
    health = ProviderHealth.objects.get(provider="fly")
    assert (health.last_failure_call, health.failing) == ("list", True)
    assert health.last_failure.startswith("Unavailable")


def test_the_observer_never_changes_a_calls_outcome() -> None:
    class Broken:
        def list(self, metadata: Any = None) -> list[Any]:
            return ["m"]

    def observe(kind: str, call: str, error: BaseException | None) -> None:
        raise RuntimeError("the database is down")

    provider = ObservedProvider(Broken(), kind="local", observe=observe)  # type: ignore[arg-type]
    assert provider.list() == ["m"]


def test_every_call_of_the_provider_protocol_is_observed() -> None:
    """A call the wrapper does not name would pass through ``__getattr__`` unseen by the dashboard."""
    calls = [name for name, value in vars(MachineProvider).items() if callable(value) and not name.startswith("_")]
    seen: list[str] = []

    class Inner:
        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    provider = ObservedProvider(Inner(), kind="local", observe=lambda kind, call, error: seen.append(call))
    for name in calls:
        method = getattr(provider, name)
        args: list[Any] = ["m", MachineState.STARTED] if name == "wait_for_state" else [] if name == "list" else ["m"]
        method(*args, **({"timeout": 1.0} if name == "wait_for_state" else {}))
    assert sorted(seen) == sorted(calls)

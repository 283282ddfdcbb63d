"""``make up`` says when the local provider cannot keep strangers' code away from the orchestrator."""

import pytest

from machines.providers.local_sandbox import CANNOT_DROP
from velocity.run import PUBLIC_HOST, is_loopback, startup_warnings


def test_as_root_on_loopback_nothing_is_said() -> None:
    assert startup_warnings(euid=0, host="127.0.0.1", provider="local") == []


def test_not_root_it_warns_that_user_code_runs_as_the_orchestrator() -> None:
    assert startup_warnings(euid=1000, host="127.0.0.1", provider="local") == [CANNOT_DROP]


def test_a_public_host_with_the_local_provider_is_warned_about() -> None:
    assert startup_warnings(euid=1000, host="0.0.0.0", provider="local") == [CANNOT_DROP, PUBLIC_HOST]  # noqa: S104


def test_the_fly_provider_runs_no_user_code_here() -> None:
    assert startup_warnings(euid=1000, host="0.0.0.0", provider="fly") == []  # noqa: S104


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback

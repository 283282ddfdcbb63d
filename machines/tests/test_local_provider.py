"""The local provider with real processes: each machine is a real preview agent under its runner."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from machines.providers.base import Guest, MachineSpec, MachineState, NotFound
from machines.providers.local import LocalProvider, group_running
from velocity.testing import REPO_ROOT, wait_for_http, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    local = LocalProvider(tmp_path / "machines")
    yield local
    for machine in local.list():
        local.destroy(machine.id)


def spec(name: str = "m1", memory_mb: int = 256) -> MachineSpec:
    return MachineSpec(
        name=name,
        guest=Guest(memory_mb=memory_mb),
        env={"PROJECT_ID": "demo", "SESSION_ID": "s1", "INACTIVITY_TIMEOUT": "600", "REALTIME_URL": ""},
        metadata={"velocity_managed": "true", "velocity_session_id": "s1"},
    )


def runner_pid(provider: LocalProvider, name: str) -> int:
    return int((provider.root / name / "runner.pid").read_text())


def agent_pid(provider: LocalProvider, name: str) -> int:
    return int(json.loads((provider.root / name / "state.json").read_text())["agent_pid"])


def test_a_created_machine_runs_a_real_agent_that_answers(provider: LocalProvider) -> None:
    machine = provider.create(spec())
    provider.wait_for_state(machine.id, MachineState.STARTED, timeout=20)
    health = wait_for_http(f"{machine.private_address}/health").json()
    assert health["status"] == "ok"
    assert provider.list({"velocity_session_id": "s1"})[0].id == "m1"
    assert provider.list({"velocity_session_id": "other"}) == []


def test_destroy_ends_the_whole_process_group_and_forgets_the_machine(provider: LocalProvider) -> None:
    machine = provider.create(spec())
    provider.wait_for_state(machine.id, MachineState.STARTED, timeout=20)
    wait_for_http(f"{machine.private_address}/health")
    pid = runner_pid(provider, "m1")
    provider.destroy("m1")
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(NotFound):
        provider.get("m1")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{machine.private_address}/health")


def test_a_crashed_agent_is_restarted_up_to_three_times_then_the_machine_fails(provider: LocalProvider) -> None:
    machine = provider.create(spec())
    provider.wait_for_state(machine.id, MachineState.STARTED, timeout=20)
    for restart in range(1, 4):
        pid = agent_pid(provider, "m1")
        os.kill(pid, signal.SIGKILL)

        def restarted(killed: int = pid) -> bool:
            return provider.get("m1").state == MachineState.STARTED and agent_pid(provider, "m1") != killed

        wait_until(restarted, timeout=20)
        assert json.loads((provider.root / "m1" / "state.json").read_text())["restarts"] == restart
    wait_for_http(f"{machine.private_address}/health")
    os.kill(agent_pid(provider, "m1"), signal.SIGKILL)
    wait_until(lambda: provider.get("m1").state == MachineState.FAILED, timeout=20)


def test_the_agent_runs_under_the_machines_memory_cap(provider: LocalProvider) -> None:
    provider.create(spec(memory_mb=300))
    provider.wait_for_state("m1", MachineState.STARTED, timeout=20)
    limits = Path(f"/proc/{agent_pid(provider, 'm1')}/limits").read_text()
    [line] = [row for row in limits.splitlines() if row.startswith("Max data size")]
    assert line.split()[3] == str(300 * 1024 * 1024)


def test_machines_are_rediscovered_by_a_new_provider_and_dead_ones_read_as_failed(
    provider: LocalProvider,
) -> None:
    provider.create(spec("alive"))
    provider.create(spec("killed"))
    provider.wait_for_state("killed", MachineState.STARTED, timeout=20)
    os.killpg(runner_pid(provider, "killed"), signal.SIGKILL)
    restarted = LocalProvider(provider.root)  # as after an orchestrator restart
    wait_until(lambda: restarted.get("killed").state == MachineState.FAILED, timeout=20)
    restarted.wait_for_state("alive", MachineState.STARTED, timeout=20)
    assert {m.id for m in restarted.list()} == {"alive", "killed"}


def test_a_retried_create_returns_the_first_machine(provider: LocalProvider) -> None:
    first = provider.create(spec())
    second = provider.create(spec())
    assert first.private_address == second.private_address
    assert len(provider.list()) == 1


def test_names_that_try_to_leave_the_machines_folder_are_not_found(provider: LocalProvider) -> None:
    for name in ("../x", ".", "a/b"):
        with pytest.raises(NotFound):
            provider.get(name)


def test_a_group_left_with_only_a_zombie_no_longer_runs() -> None:
    # The leader exits but nobody collects it yet: the kernel still finds the group, yet nothing runs.
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().split()[2] == "Z", timeout=20)
    os.killpg(child.pid, 0)  # no error: a zombie keeps the group visible
    assert not group_running(child.pid)
    child.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    assert group_running(sleeper.pid)
    sleeper.kill()
    sleeper.wait()


def test_restart_kills_a_frozen_agent_and_starts_it_again_on_the_same_port(provider: LocalProvider) -> None:
    machine = provider.create(spec())
    provider.wait_for_state(machine.id, MachineState.STARTED, timeout=20)
    wait_for_http(f"{machine.private_address}/health")
    frozen, old_runner = agent_pid(provider, "m1"), runner_pid(provider, "m1")
    os.kill(frozen, signal.SIGSTOP)  # SIGTERM would never be handled: only SIGKILL ends it
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{machine.private_address}/health", timeout=1)
    provider.restart("m1")
    assert not group_running(old_runner)
    wait_until(lambda: provider.get("m1").state == MachineState.STARTED, timeout=20)
    assert agent_pid(provider, "m1") != frozen
    assert wait_for_http(f"{machine.private_address}/health").json()["status"] == "ok"
    assert provider.get("m1").state == MachineState.STARTED
    assert provider.get("m1").private_address == machine.private_address


def test_the_runner_starts_without_importing_django() -> None:
    """A machine's start waits for its runner's interpreter: importing Django's settings took a third of it."""
    check = "import sys, machines.providers.local_runner; print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

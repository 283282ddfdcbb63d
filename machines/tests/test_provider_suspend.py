"""Suspend and resume: the local provider stops the agent's whole process group and continues it (real
processes); the Fly client's ``POST .../suspend`` and the resume by ``start`` match Fly's OpenAPI spec."""

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from machines.providers.base import Conflict, Guest, MachineSpec, MachineState, preview_metadata
from machines.providers.fly import FlyConfig, FlyProvider
from machines.providers.local import LocalProvider
from machines.testing.fly_fake import FakeClock, FakeFly, running
from machines.testing.spec_contract import SPEC_MISSING, shared_contract, spec_waived
from velocity.testing import require, wait_for_http


def group_states(pgid: int) -> set[str]:
    """The scheduler states (``T`` stopped, ``S``/``R`` running) of every process in the group."""
    states = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                states.add(fields[0])
    return states


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(tmp_path / "machines")
    yield provider
    for machine in provider.list():
        provider.destroy(machine.id)


@pytest.mark.slow
def test_a_suspended_local_machine_keeps_its_processes_stopped_and_resumes_on_start(local: LocalProvider) -> None:
    spec = MachineSpec(name="m1", guest=Guest(memory_mb=256), env={"PROJECT_ID": "p", "REALTIME_URL": ""}, metadata={})
    machine = local.create(spec)
    local.wait_for_state(machine.id, MachineState.STARTED, timeout=20)
    wait_for_http(f"{machine.private_address}/health")
    group = int((local.root / "m1" / "runner.pid").read_text())
    local.suspend("m1")
    assert local.get("m1").state == MachineState.SUSPENDED
    assert group_states(group) == {"T"}  # runner and agent alike: no code of the machine runs
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{machine.private_address}/health", timeout=0.5)
    local.start("m1")
    assert "T" not in group_states(group)
    assert local.get("m1").state == MachineState.STARTED
    assert wait_for_http(f"{machine.private_address}/health").json()["status"] == "ok"
    assert int((local.root / "m1" / "runner.pid").read_text()) == group == os.getpgid(group)  # the same processes


@pytest.mark.slow
def test_only_a_started_local_machine_can_be_suspended(local: LocalProvider) -> None:
    local.create(MachineSpec(name="m2", guest=Guest(memory_mb=256), env={"REALTIME_URL": ""}, metadata={}))
    local.wait_for_state("m2", MachineState.STARTED, timeout=20)
    local.stop("m2")
    with pytest.raises(Conflict, match="not started"):
        local.suspend("m2")
    assert local.get("m2").state == MachineState.STOPPED


def test_fly_suspend_and_resume_match_the_spec() -> None:
    contract = shared_contract()
    require(contract or spec_waived(), SPEC_MISSING)
    if contract is None:
        pytest.skip(SPEC_MISSING)
    clock = FakeClock()
    with running(FakeFly(contract=contract, clock=clock)) as fake:
        config = FlyConfig(api_token="fo1_t", app_name="previews", base_url=fake.base_url, image="img", region="iad")
        with FlyProvider(replace(config), clock=clock, sleep=clock.sleep) as fly:
            metadata = preview_metadata(session_id="s1", project_id="p1", user_id="u1")
            machine = fly.create(MachineSpec(name="pool-1", env={}, metadata=metadata))
            fly.wait_for_state(machine.id, MachineState.STARTED, timeout=5)
            fly.suspend(machine.id)
            fly.wait_for_state(machine.id, MachineState.SUSPENDED, timeout=5)
            fly.start(machine.id)
            fly.wait_for_state(machine.id, MachineState.STARTED, timeout=5)
        assert fake.violations == []
        assert {"Machines_suspend", "Machines_start", "Machines_wait"} <= fake.operations
        assert [call.action for call in fake.requests if call.action in ("suspend", "start")] == ["suspend", "start"]

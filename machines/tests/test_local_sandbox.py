"""The local provider as root: each machine's user code runs as a uid of its own and reaches no secret."""

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from machines.providers.base import Guest, MachineSpec, MachineState
from machines.providers.local import LocalProvider
from machines.providers.local_sandbox import (
    CANNOT_DROP,
    SandboxConfig,
    privilege_warning,
    sandbox_claim,
    sandbox_release,
    sandbox_uid,
)
from preview_agent.tests.hostile import SERVED, read_found, write_hostile_project
from velocity.testing import require, wait_for_http, wait_until
from velocity.var_dir import read_or_create_secret, secure_var_dir

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-machine uids need root")
# A range of our own, so a test never meets another suite's machines (the claim is per sandbox root anyway).
UID_BASE, UID_COUNT = 2_000_200_000, 1_000


@pytest.fixture
def sandbox_config() -> Iterator[SandboxConfig]:
    """A sandbox root others can pass through: pytest's ``tmp_path`` lies under a 0700 folder."""
    parent = Path(tempfile.mkdtemp(prefix="velocity-local-sandbox-test-"))
    parent.chmod(0o711)
    yield SandboxConfig(root=parent / "sandboxes", uid_base=UID_BASE, uid_count=UID_COUNT)
    shutil.rmtree(parent, ignore_errors=True)


def test_a_machines_uid_is_derived_from_its_name_within_the_range() -> None:
    config = SandboxConfig(uid_base=5000, uid_count=10)
    first = sandbox_uid("machine-a", 0, config=config)
    assert first == sandbox_uid("machine-a", 0, config=config)
    assert {sandbox_uid("machine-a", attempt, config=config) for attempt in range(10)} == set(range(5000, 5010))
    assert sandbox_uid("machine-a", 1, config=config) == 5000 + (first - 5000 + 1) % 10


@needs_root
def test_claims_never_share_a_uid_and_build_private_folders(sandbox_config: SandboxConfig) -> None:
    taken = sandbox_uid("m1", 0, config=sandbox_config)
    sandbox_config.root.mkdir(mode=0o711)
    (sandbox_config.root / str(taken)).mkdir()  # another orchestrator holds m1's first choice
    first, second = sandbox_claim("m1", config=sandbox_config), sandbox_claim("m1", config=sandbox_config)
    assert len({taken, first.uid, second.uid}) == 3
    for path in (first.folder, first.project, first.home):
        info = os.stat(path)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (first.uid, 0o700)
    assert stat.S_IMODE(os.stat(sandbox_config.root).st_mode) == 0o711
    sandbox_release(first)
    assert not first.folder.exists() and second.folder.exists()


def test_it_warns_that_it_cannot_drop_privileges_when_not_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert privilege_warning(euid=0) is None
    with caplog.at_level(logging.WARNING, logger="machines.providers.local"):
        provider = LocalProvider(tmp_path / "machines", euid=1000)
    assert provider.sandbox is None
    assert [record.getMessage() for record in caplog.records] == [CANNOT_DROP]


def spec(name: str, secret: str) -> MachineSpec:
    env = {"PROJECT_ID": name, "SESSION_ID": "s", "INACTIVITY_TIMEOUT": "600", "REALTIME_URL": ""}
    env |= {"MACHINE_TOKEN": f"machine-token-{secret}", "REALTIME_KEY": f"realtime-key-{secret}"}
    return MachineSpec(name=name, guest=Guest(memory_mb=512), env=env, metadata={"velocity_managed": "true"})


@needs_root
def test_a_hostile_dev_script_reaches_no_secret_of_the_orchestrator_or_another_machine(
    tmp_path: Path, sandbox_config: SandboxConfig
) -> None:
    require(shutil.which("node"), "the hostile dev script is a node script")
    var = tmp_path / "var"
    secure_var_dir(var)
    jwt_secret = read_or_create_secret(var, "jwt_secret")
    provider = LocalProvider(var / "machines", sandbox=sandbox_config)
    try:
        provider.create(spec("victim", "victim"))
        attacker = provider.create(spec("attacker", "attacker"))
        victim_project, victim_uid = _sandbox(provider, "victim")
        attacker_project, uid = _sandbox(provider, "attacker")
        (victim_project / "index.html").write_text("victims-private-page")
        targets = [str(var / "jwt_secret"), str(var / "machines" / "attacker" / "config.json"), str(var)]
        targets += [str(victim_project), str(victim_project / "index.html")]
        provider.wait_for_state(attacker.id, MachineState.STARTED, timeout=20)
        agent_pid = int(json.loads((provider.root / "attacker" / "state.json").read_text())["agent_pid"])
        write_hostile_project(attacker_project, paths=targets, signal=[agent_pid], owner=uid, linger=True)
        found = wait_until(lambda: read_found(attacker_project), timeout=30)
        assert wait_for_http(f"{attacker.private_address}/", timeout=20).text == SERVED
    finally:
        for machine in provider.list():
            provider.destroy(machine.id)
    assert (found["uid"], found["gid"]) == (uid, uid) and uid != victim_uid
    assert set(targets) <= set(found["denied"])
    assert found["denied"][f"/proc/{agent_pid}/environ"] == "EACCES"
    assert found["denied"][f"signal:{agent_pid}"] == "EPERM"
    for secret in ("machine-token-", "realtime-key-", jwt_secret, "victims-private-page"):
        assert secret not in repr(found)
    assert not victim_project.exists() and not attacker_project.exists()
    assert processes_of(uid) == []  # the daemon it left is gone with its machine


def processes_of(uid: int) -> list[str]:
    """Live processes of ``uid`` (zombies are dead already: they only wait for init to collect them)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if str(uid) in fields["Uid"].split() and not fields["State"].strip().startswith("Z"):
                found.append(status.parent.name)
    return found


def _sandbox(provider: LocalProvider, name: str) -> tuple[Path, int]:
    """The machine's project folder and uid, as its config.json records them."""
    config = json.loads((provider.root / name / "config.json").read_text())
    return Path(config["env"]["PROJECT_DIR"]), int(config["sandbox"]["uid"])

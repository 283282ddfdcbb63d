"""User code runs as an unprivileged uid: the rules (``sandbox.py``), file ownership, and a real hostile agent."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from preview_agent.config import ConfigError, load_config
from preview_agent.files import FileRefused, FileStore, write_inside
from preview_agent.sandbox import CANNOT_DROP, RUNS_AS_ROOT, sandbox_from_env, sandbox_warning
from preview_agent.tests.conftest import MACHINE_TOKEN, AgentProcess
from preview_agent.tests.hostile import SERVED, read_found, write_hostile_project
from velocity.testing import require, wait_until

UID = 2_000_123_457  # no passwd entry needed, as under the local provider
OTHER_UID = UID + 1
REALTIME_KEY = "realtime-key-of-this-machine"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def test_it_drops_to_numeric_ids_with_the_given_home_only_as_root() -> None:
    env = {"DEV_SERVER_UID": str(UID), "DEV_SERVER_HOME": "/srv/home"}
    sandbox = sandbox_from_env(env, euid=0)
    assert sandbox is not None
    assert (sandbox.uid, sandbox.gid, str(sandbox.home)) == (UID, UID, "/srv/home")
    assert sandbox.popen_kwargs() == {"user": UID, "group": UID, "extra_groups": [], "umask": 0o077}
    assert sandbox_from_env(env, euid=1000) is None
    assert sandbox_warning(env, euid=1000) == CANNOT_DROP
    assert sandbox_warning({}, euid=0) == RUNS_AS_ROOT
    assert sandbox_warning(env, euid=0) is None


def test_it_resolves_a_user_name_to_its_ids_and_home() -> None:
    sandbox = sandbox_from_env({"DEV_SERVER_USER": "nobody"}, euid=0)
    assert sandbox is not None and (sandbox.uid, sandbox.name) == (65534, "nobody")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DEV_SERVER_USER": "no-such-user-here"}, "DEV_SERVER_USER names no user"),
        ({"DEV_SERVER_UID": "0", "DEV_SERVER_HOME": "/h"}, "must not be root"),
        ({"DEV_SERVER_UID": "12", "DEV_SERVER_GID": "0", "DEV_SERVER_HOME": "/h"}, "must not be root"),
        ({"DEV_SERVER_UID": "abc", "DEV_SERVER_HOME": "/h"}, "DEV_SERVER_UID must be a number"),
        ({"DEV_SERVER_UID": "12"}, "DEV_SERVER_HOME is required"),
        ({"DEV_SERVER_UID": "12", "DEV_SERVER_HOME": "relative"}, "absolute"),
    ],
)
def test_unusable_sandbox_variables_are_configuration_errors(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_config(env, euid=0)


def test_the_sandboxed_environment_keeps_only_the_basics_and_its_own_home() -> None:
    sandbox = sandbox_from_env({"DEV_SERVER_UID": str(UID), "DEV_SERVER_HOME": "/h"}, euid=0)
    assert sandbox is not None
    agent_env = {"PATH": "/usr/bin", "HOME": "/root", "PROJECT_ID": "p", "PYTHONPATH": "/opt", "LANG": "C.UTF-8"}
    assert sandbox.environment(agent_env) == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "HOME": "/h",
        "USER": f"u{UID}",
        "LOGNAME": f"u{UID}",
        "npm_config_cache": "/h/.npm",
    }


@needs_root
def test_files_and_folders_the_agent_writes_belong_to_the_sandbox_uid(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "project", max_bytes=1024, owner=(UID, UID))
    store.write("src/deep/app.js", b"x", 1)
    for relative in ("src", "src/deep", "src/deep/app.js"):
        info = os.stat(tmp_path / "project" / relative)
        assert (info.st_uid, info.st_gid) == (UID, UID), relative


def test_the_install_marker_is_not_written_through_a_node_modules_link(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "project" / "node_modules").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileRefused) as refused:
        write_inside(tmp_path / "project", ("node_modules", ".velocity-install-hash"), b"hash")
    assert refused.value.code == "symlink"
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder other uids can pass through: pytest's ``tmp_path`` lies under a 0700 folder."""
    path = Path(tempfile.mkdtemp(prefix="velocity-sandbox-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def private_file(path: Path, text: str, *, uid: int = 0) -> Path:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    os.chown(path.parent, uid, uid)
    os.chown(path, uid, uid)
    return path


@needs_root
def test_a_hostile_dev_script_finds_no_secret_and_runs_as_the_sandbox_uid(
    start_agent: Callable[..., AgentProcess], open_dir: Path
) -> None:
    require(shutil.which("node"), "the hostile dev script is a node script")
    secrets = {
        "token": private_file(open_dir / "agent" / "token", "agent-token-file-secret"),
        "code": private_file(open_dir / "agent" / "code" / "agent.py", "agent-code-secret"),
        "jwt": private_file(open_dir / "var" / "jwt_secret", "jwt-secret-of-the-orchestrator"),
        "other": private_file(open_dir / "other" / "app.js", "another-users-project", uid=OTHER_UID),
    }
    project = open_dir / "project"
    project.mkdir(mode=0o700)
    os.chown(project, UID, UID)
    root_pid = os.getpid()  # a root process to signal: the test (the agent's pid is not known yet)
    paths = [str(path) for path in secrets.values()] + [str(open_dir / "agent"), str(open_dir / "other")]
    write_hostile_project(project, paths=paths, signal=[root_pid], owner=UID)
    agent = start_agent(
        project,
        REALTIME_KEY=REALTIME_KEY,
        DEV_SERVER_UID=str(UID),
        DEV_SERVER_HOME=str(open_dir / "home"),
    )
    found = wait_until(lambda: read_found(project), timeout=30)
    wait_until(lambda: agent.health()["devServer"], timeout=15)

    assert agent.get("/").text == SERVED
    assert (found["uid"], found["gid"], set(found["groups"]) - {UID}) == (UID, UID, set())
    assert os.stat(project / "found.json").st_uid == UID
    assert found["denied"][f"/proc/{agent.process.pid}/environ"] == "EACCES"
    assert found["denied"][f"signal:{root_pid}"] == "EPERM"
    assert set(paths) <= set(found["denied"])
    everything = repr(found)
    for secret in (MACHINE_TOKEN, REALTIME_KEY, *(path.read_text() for path in secrets.values())):
        assert secret not in everything
    assert stat.S_IMODE(os.stat(open_dir / "home").st_mode) == 0o700

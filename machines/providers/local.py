"""The embedded default provider: each machine is a real preview agent process on a loopback port.

A machine is a directory ``VAR_DIR/machines/<name>/`` holding ``config.json`` (what was asked for),
``state.json`` (written by the machine's runner) and the project folder. The runner
(``local_runner``) leads its own process group, so stop and destroy end the agent and its dev server
together. Nothing lives only in memory: after an orchestrator restart, ``list`` and ``get`` rediscover
every machine from its directory, and a machine whose process is gone reads as stopped or failed.

When the orchestrator runs as root, each machine's project lives in a sandbox of its own uid instead
(``local_sandbox``): the agent stays root and runs the user's code as that uid. Otherwise the provider
says at startup that it cannot.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machines.providers.base import (
    Conflict,
    Guest,
    MachineSpec,
    MachineState,
    NotFound,
    ProviderMachine,
    WaitTimeout,
)
from machines.providers.local_sandbox import (
    MachineSandbox,
    SandboxConfig,
    kill_uid,
    privilege_warning,
    sandbox_claim,
    sandbox_release,
)

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
HOST_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "npm_config_cache", "NODE_OPTIONS"})
STOP_GRACE_SECONDS = 5.0
# Reading a machine's state is two small files and /proc: cheap enough to look every 10 ms (a start takes ~30 ms).
STATE_POLL_SECONDS = 0.01
SPAWN_GRACE_SECONDS = 5.0  # between "starting" written and the runner's pid recorded, a few milliseconds
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int | None, marker: str) -> bool:
    """Is ``pid`` still our runner? (pids are reused, so its command line must name the machine.)"""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return marker.encode() in cmdline and status != "Z"


class LocalProvider:
    def __init__(
        self,
        root: Path,
        *,
        python: str = sys.executable,
        sandbox: SandboxConfig | None = None,
        euid: int | None = None,
    ) -> None:
        self.root = root
        self.python = python
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        euid = os.geteuid() if euid is None else euid
        warning = privilege_warning(euid=euid)
        if warning is not None:
            logger.warning(warning)
        # Only root can start processes as other uids; without it there is nothing to configure.
        self.sandbox = (sandbox or SandboxConfig()) if warning is None else None

    # --- interface ------------------------------------------------------------------------------

    def create(self, spec: MachineSpec) -> ProviderMachine:
        machine_dir = self.root / spec.name
        if (machine_dir / "config.json").exists():
            return self.get(spec.name)  # a retried create finds the first one
        machine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sandbox, project = self._project(spec.name, machine_dir)
        guest = spec.guest or Guest()
        port = free_port()
        # A local machine answers on loopback only, like a Fly machine answers only on its private network.
        env = {"PROJECT_DIR": str(project), **spec.env, "PORT": str(port), "HOST": "127.0.0.1"}
        env |= sandbox.agent_env() if sandbox else {}
        config = {
            "name": spec.name,
            "env": env,
            "metadata": dict(spec.metadata),
            "guest": {"cpu_kind": guest.cpu_kind, "cpus": guest.cpus, "memory_mb": guest.memory_mb},
            "port": port,
            "max_retries": MAX_RETRIES,
            "created_at": time.time(),
            "image": spec.image,
            "region": "local",
            "sandbox": {"uid": sandbox.uid, "folder": str(sandbox.folder)} if sandbox else None,
        }
        _write_private(machine_dir / "config.json", json.dumps(config))
        self._spawn(machine_dir, env)
        return self.get(spec.name)

    def _project(self, name: str, machine_dir: Path) -> tuple[MachineSandbox | None, Path]:
        if self.sandbox is None:
            (machine_dir / "project").mkdir(exist_ok=True)
            return None, machine_dir / "project"
        sandbox = sandbox_claim(name, config=self.sandbox)
        # For people and tools that look in the machine's folder; the agent is given the real path.
        with contextlib.suppress(FileExistsError):
            (machine_dir / "project").symlink_to(sandbox.project)
        return sandbox, sandbox.project

    def start(self, machine_id: str) -> None:
        machine = self.get(machine_id)
        if machine.state in (MachineState.STARTED, MachineState.STARTING):
            return
        if machine.state == MachineState.SUSPENDED:
            self._resume(self._dir(machine_id))
            return
        config = self._config(self.root / machine_id)
        self._spawn(self.root / machine_id, config["env"])

    def stop(self, machine_id: str) -> None:
        machine_dir = self._dir(machine_id)
        self._kill(machine_dir)
        (machine_dir / "state.json").write_text(json.dumps({"state": "stopped", "updated_at": time.time()}))

    def suspend(self, machine_id: str) -> None:
        """SIGSTOP the runner's process group: the agent keeps its memory, sockets and port and runs no code,
        as a suspended Fly machine keeps its snapshot; ``start`` sends SIGCONT. A group that is not running
        cannot be suspended (Fly refuses too)."""
        machine_dir = self._dir(machine_id)
        pid = self._pid(machine_dir)
        if self.get(machine_id).state != MachineState.STARTED or pid is None:
            raise Conflict(f"machine {machine_id} is not started", status=409)
        os.killpg(pid, signal.SIGSTOP)
        self._write_state(machine_dir, "suspended")

    def _resume(self, machine_dir: Path) -> None:
        pid = self._pid(machine_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
        self._write_state(machine_dir, "started")

    @staticmethod
    def _write_state(machine_dir: Path, state: str) -> None:
        """The provider's own word on the state while the runner cannot speak (it is stopped with its group)."""
        current = json.loads((machine_dir / "state.json").read_text()) if (machine_dir / "state.json").exists() else {}
        (machine_dir / "state.json").write_text(json.dumps({**current, "state": state, "updated_at": time.time()}))

    def restart(self, machine_id: str) -> None:
        """SIGKILL the runner's process group (a SIGSTOPped agent cannot act on SIGTERM) and run it again.

        The machine keeps its directory, port and project folder, as a Fly machine keeps its address.
        """
        machine_dir = self._dir(machine_id)
        self._kill(machine_dir, grace=0.0)
        self._spawn(machine_dir, self._config(machine_dir)["env"])

    def destroy(self, machine_id: str, *, force: bool = True) -> None:
        machine_dir = self.root / machine_id
        if not machine_dir.exists():
            return
        sandbox = self._sandbox_of(machine_dir)
        self._kill(machine_dir)
        if sandbox is not None:
            sandbox_release(sandbox)
        shutil.rmtree(machine_dir, ignore_errors=True)

    def get(self, machine_id: str) -> ProviderMachine:
        machine_dir = self._dir(machine_id)
        config, state = self._config(machine_dir), self._state(machine_dir)
        return self._describe(machine_dir.name, config, state)

    def list(self, metadata: Mapping[str, str] | None = None) -> builtins.list[ProviderMachine]:
        machines = []
        for config_path in sorted(self.root.glob("*/config.json")):
            with contextlib.suppress(NotFound, OSError, ValueError):
                machine = self.get(config_path.parent.name)
                if all(machine.metadata.get(k) == v for k, v in (metadata or {}).items()):
                    machines.append(machine)
        return machines

    def wait_for_state(
        self, machine_id: str, state: MachineState, *, timeout: float, version: str | None = None
    ) -> MachineState:
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(machine_id).state
            if current == state:
                return current
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"machine {machine_id} is {current}, not {state}, after {timeout}s")
            time.sleep(STATE_POLL_SECONDS)

    # --- helpers --------------------------------------------------------------------------------

    def address(self, machine_id: str) -> str:
        return f"http://127.0.0.1:{self._config(self._dir(machine_id))['port']}"

    def _dir(self, machine_id: str) -> Path:
        machine_dir = self.root / machine_id
        if "/" in machine_id or machine_id.startswith(".") or not (machine_dir / "config.json").exists():
            raise NotFound(f"no local machine {machine_id}", status=404)
        return machine_dir

    def _spawn(self, machine_dir: Path, env: Mapping[str, str]) -> None:
        # A machine gets the environment a Fly machine gets, plus what a process needs to run here;
        # none of the orchestrator's own settings or secrets.
        host = {k: v for k, v in os.environ.items() if k in HOST_ENV}
        child_env = {**host, **env, "PYTHONPATH": str(REPO_ROOT)}
        (machine_dir / "state.json").write_text(json.dumps({"state": "starting", "updated_at": time.time()}))
        log = (machine_dir / "machine.log").open("ab")
        runner = subprocess.Popen(  # noqa: S603  (our interpreter, our module)
            [self.python, "-m", "machines.providers.local_runner", str(machine_dir)],
            env=child_env,
            cwd=str(REPO_ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        # Only the provider writes runner.pid and only the runner writes state.json: no write races.
        (machine_dir / "runner.pid").write_text(str(runner.pid))

    def _kill(self, machine_dir: Path, *, grace: float = STOP_GRACE_SECONDS) -> None:
        sandbox = self._sandbox_of(machine_dir)
        self._kill_runner(machine_dir, grace)
        if sandbox is not None:
            kill_uid(sandbox.uid)  # what the user's code left running outside the runner's process group

    def _kill_runner(self, machine_dir: Path, grace: float) -> None:
        """SIGTERM, and SIGKILL after ``grace`` seconds (at once when it is 0)."""
        pid = self._pid(machine_dir)
        if pid is None or not _alive(pid, str(machine_dir)):
            return
        if grace > 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        if grace <= 0 or not _wait_group_gone(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_group_gone(pid, 2.0)

    @staticmethod
    def _config(machine_dir: Path) -> dict[str, Any]:
        return dict(json.loads((machine_dir / "config.json").read_text()))

    @classmethod
    def _sandbox_of(cls, machine_dir: Path) -> MachineSandbox | None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            claimed = cls._config(machine_dir)["sandbox"]
            return MachineSandbox(int(claimed["uid"]), Path(claimed["folder"]))
        return None

    @staticmethod
    def _state(machine_dir: Path) -> dict[str, Any]:
        path = machine_dir / "state.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    @staticmethod
    def _pid(machine_dir: Path) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((machine_dir / "runner.pid").read_text())
        return None

    def _describe(self, name: str, config: dict[str, Any], state: dict[str, Any]) -> ProviderMachine:
        raw = str(state.get("state", "starting"))
        pid = self._pid(self.root / name)
        if raw in ("starting", "started") and (pid is None or not _alive(pid, str(self.root / name))):
            # The process is gone without saying so (killed, or the host restarted); unless the provider has just
            # written "starting" and not yet recorded the new runner's pid (a start or restart under way).
            raw = "starting" if raw == "starting" and _just_written(state) else "failed"
        guest = config["guest"]
        return ProviderMachine(
            id=name,
            name=name,
            state=MachineState(raw),
            raw_state=raw,
            region="local",
            private_ip="127.0.0.1",
            private_address=f"http://127.0.0.1:{config['port']}",
            metadata=config["metadata"],
            image=config.get("image"),
            guest=Guest(guest["cpu_kind"], guest["cpus"], guest["memory_mb"]),
            created_at=datetime.fromtimestamp(config["created_at"], tz=UTC),
        )


def _just_written(state: dict[str, Any]) -> bool:
    return time.time() - float(state.get("updated_at") or 0) < SPAWN_GRACE_SECONDS


def _write_private(path: Path, text: str) -> None:
    """0600 from the start: config.json holds the machine's token and realtime key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of the group is left running, collecting the leader if it is our own child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pgid, os.WNOHANG)
        if not group_running(pgid):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pgid, os.WNOHANG)  # it may have become a zombie since the collect above
            return True
        time.sleep(0.02)
    return False


def group_running(pgid: int) -> bool:
    """Does any process of the group still run? Zombies do not count.

    A runner is the child of whichever process created the machine (often a task worker), and only
    that process (or init) can collect it; until then it is a zombie that ``killpg(pgid, 0)`` still
    finds. Counting it as alive made every destroy from another process wait out the whole grace.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False

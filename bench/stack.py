"""The system under test, started from scratch: a temp var dir, migrations, daphne and the task cluster.

Everything is started in its own process group and stopped by group; the local provider's machines
(which lead their own groups) are stopped through their ``runner.pid``. ``leaks()`` then scans
``/proc`` for any process that still carries the stack's var dir, so a benchmark that leaves one
behind says so. With ``DATABASE_URL`` the stack gets a fresh PostgreSQL database (dropped at the end);
with ``REDIS_URL`` it uses a Redis database index of its own, so its task queue and channel layer never
meet another orchestrator's on the same server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from velocity.run import child_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_REDIS_DB = os.environ.get("BENCH_REDIS_DB", "13")
UNLIMITED_RATE = "1000000/min"
# As velocity/run.py serves it (`make up`): frames up to 5 MB, so an oversize file:update is answered.
DAPHNE_LIMITS = ["--websocket-max-message-size", "5000000", "--websocket-max-frame-size", "5000000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and make sure the group is gone."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    signal_group(process.pid, signal.SIGKILL)


def processes_marked(marker: str) -> list[int]:
    """Pids (other than ours) whose command line or environment contains ``marker``."""
    found, needle = [], marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


class Stack:
    """One orchestrator: its own var dir, port, database, secrets; the bench process shares its settings."""

    def __init__(self, root: Path, **extra_env: str) -> None:
        self.root = root
        self.var_dir = root / "var"
        self.logs = root / "logs"
        self.port = free_port()
        self.database: str | None = None
        self.base_database_url = os.environ.get("DATABASE_URL", "")
        self.env = self._environment(extra_env)
        self.server: subprocess.Popen[bytes] | None = None
        self.cluster: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DJANGO_SETTINGS_MODULE="velocity.settings",
            VELOCITY_VAR_DIR=str(self.var_dir),
            HOST="127.0.0.1",
            PORT=str(self.port),
            ORCHESTRATOR_URL=self.base_url,
            DEBUG="true",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
            SUPABASE_JWT_SECRET=secrets.token_urlsafe(32),
            SUPABASE_URL="",
            REALTIME_URL="",
            MACHINE_PROVIDER="local",
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"),
            PYTHONPATH=str(REPO_ROOT),
            # The benchmarks measure the system, not the per-user rate limits (documented in the results).
            THROTTLE_CREATE=UNLIMITED_RATE,
            THROTTLE_READ=UNLIMITED_RATE,
            THROTTLE_AGENT=UNLIMITED_RATE,
            THROTTLE_IP=UNLIMITED_RATE,
            # edit_to_ack runs under "supabase" (the agent and the editor must stay inside it).
            REALTIME_LIMITS_PROFILE="unlimited",
        )
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{BENCH_REDIS_DB}"))
        env.update(extra)
        return env

    # --- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> Stack:
        """Create the var dir (and database), adopt the stack's settings in this process, migrate."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.base_database_url:
            self.database = f"velocity_bench_{os.getpid()}_{secrets.token_hex(3)}"
            _postgres(self.base_database_url, f'CREATE DATABASE "{self.database}"')
            base = urlsplit(self.base_database_url)
            self.env["DATABASE_URL"] = urlunsplit(base._replace(path=f"/{self.database}"))
        if "REDIS_URL" in self.env:
            _redis_flush(self.env["REDIS_URL"])
        os.environ.update(self.env)
        self.manage("migrate", "--no-input", "--verbosity", "0")
        return self

    def manage(self, *args: str, timeout: float = 300) -> str:
        argv = [sys.executable, "manage.py", *args]
        done = subprocess.run(  # noqa: S603  (our interpreter, our manage.py)
            argv, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603  (our interpreter and modules)
            [sys.executable, *argv],
            cwd=REPO_ROOT,
            env=self.env if env is None else env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return process

    def start_server(self) -> None:
        argv = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "--access-log", os.devnull]
        argv += DAPHNE_LIMITS
        # As velocity.run starts a daphne: its startup objects frozen, PostgreSQL connections from a pool.
        self.server = self._spawn("daphne", [*argv, "velocity.asgi:application"], child_environment(self.env, web=True))
        wait_until_answering(f"{self.base_url}/health")

    def start_cluster(self) -> None:
        self.cluster = self._spawn("qcluster", ["manage.py", "qcluster"])

    def stop_cluster(self) -> None:
        if self.cluster is not None:
            stop_group(self.cluster)
            self.cluster = None

    def stop_server(self) -> None:
        if self.server is not None:
            stop_group(self.server)
            self.server = None

    def stop_machines(self) -> int:
        """Stop every local machine (runner and agent) that the provider started under this var dir."""
        stopped = 0
        for pid_file in (self.var_dir / "machines").glob("*/runner.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text())
                if str(pid_file.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    signal_group(pid, signal.SIGKILL)
                    stopped += 1
        return stopped

    def stop(self) -> list[int]:
        """Stop everything; return the pids of whatever still runs with this stack's var dir (should be [])."""
        self.stop_cluster()
        self.stop_server()
        self.stop_machines()
        time.sleep(0.3)
        leaked = processes_marked(str(self.var_dir))
        for pid in leaked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.database:
            _close_django_connections()
            _postgres(self.base_database_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        return leaked

    def cluster_pids(self) -> list[int]:
        """Pids of the task cluster's processes (its process group), none when it is stopped."""
        return [] if self.cluster is None else _processes_in_groups({self.cluster.pid})

    def agent_pids(self) -> list[int]:
        """Pids of the preview agents running now: the ``preview_agent`` processes in the process groups the
        machines' runners lead (an agent's environment is its own since the sandbox, so no marker is in it)."""
        runners = set()
        for pid_file in (self.var_dir / "machines").glob("*/runner.pid"):
            with contextlib.suppress(OSError, ValueError):
                runners.add(int(pid_file.read_text()))
        return [pid for pid in _processes_in_groups(runners) if _is_agent(pid)]


def _processes_in_groups(leaders: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) in leaders:
                    pids.append(int(entry.name))
    return pids


def _is_agent(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"preview_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _postgres(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def _redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _close_django_connections() -> None:
    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()

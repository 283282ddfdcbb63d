"""``make up``'s supervisor run for real: the server answers, and Ctrl-C leaves no process behind."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from velocity.testing import REPO_ROOT, embedded_env, free_port, manage, wait_for_http, wait_until

pytestmark = pytest.mark.slow


def processes_with_env(marker: str) -> list[int]:
    """Pids of every process whose environment holds ``marker`` (our children carry the tmp var dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def running(pid: int) -> bool:
    """Alive and not a zombie (a machine's runner outlives the command that made it, so init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def machine_states(var_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(var_dir / "velocity.sqlite3")) as db:
        return [row[0] for row in db.execute("SELECT state FROM machines_machine")]


def test_up_serves_health_and_admin_and_ctrl_c_stops_everything_local_machines_included(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path, PORT=str(port), HOST="127.0.0.1", WARM_POOL_SIZE="1", VELOCITY_UP_MARKER="1")
    manage(env, "migrate", "-v0")
    manage(env, "sweep", "--only", "refill_warm_pool")  # a real local machine, in a process group of its own
    runner_pid = int(next((tmp_path / "machines").glob("*/runner.pid")).read_text())
    supervisor = subprocess.Popen([sys.executable, "-m", "velocity.run"], cwd=REPO_ROOT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=30)
        # web first, then the task cluster's first heartbeat turns the worker check ok
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok", timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/admin/login/").status_code == 200
        assert running(runner_pid)
        # supervisor, daphne, the cluster, the machine: the cluster may start after /health answers
        wait_until(lambda: len(processes_with_env(str(tmp_path))) >= 4, timeout=30, what="all four processes")
    finally:
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
    wait_until(lambda: processes_with_env(str(tmp_path)) == [], timeout=10, what="every process gone")
    assert not running(runner_pid)
    assert machine_states(tmp_path) == ["destroyed"]  # destroyed through the services, so it is on record

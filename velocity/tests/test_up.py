"""``make up``'s supervisor run for real: the server answers, and Ctrl-C leaves no process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from velocity.testing import REPO_ROOT, embedded_env, free_port, wait_for_http

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


def test_up_serves_health_and_admin_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path, PORT=str(port), HOST="127.0.0.1", VELOCITY_UP_MARKER=str(tmp_path))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True, timeout=120)
    supervisor = subprocess.Popen([sys.executable, "-m", "velocity.run"], cwd=REPO_ROOT, env=env)
    try:
        health = wait_for_http(f"http://127.0.0.1:{port}/health", timeout=30).json()
        assert health["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/admin/login/").status_code == 200
        assert len(processes_with_env(str(tmp_path))) >= 3  # supervisor, daphne, the cluster
    finally:
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while processes_with_env(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_env(str(tmp_path)) == []

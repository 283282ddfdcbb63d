"""The process that *is* a local machine: it runs the preview agent and applies Fly's restart policy.

``python -m machines.providers.local_runner STATE_DIR`` leads its own process group. It starts
``python -m preview_agent`` with the environment it was given, restarts it when it fails (up to
``max_retries`` times, like Fly's ``on-failure`` policy), and records its state in ``STATE_DIR/state.json``
so that the provider (in any orchestrator process, before or after a restart) can read it. It imports
nothing from Django.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

BACKOFF_SECONDS = (0.5, 1.0, 2.0)


def write_state(state_dir: Path, **fields: Any) -> None:
    path = state_dir / "state.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(fields, updated_at=time.time())
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(current))
    tmp.replace(path)


def cap_memory(memory_mb: int) -> None:
    """Cap the agent and its dev server at the machine's memory.

    RLIMIT_DATA, not RLIMIT_AS: Node reserves gigabytes of address space it never touches, so an
    address-space cap kills any dev server; the data limit counts what is really writable.
    """
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def run_agent(memory_mb: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "preview_agent"], preexec_fn=lambda: cap_memory(memory_mb)
    )


def main(state_dir: Path) -> int:
    config = json.loads((state_dir / "config.json").read_text())
    max_retries, memory_mb = int(config["max_retries"]), int(config["guest"]["memory_mb"])
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failures = 0
    while True:
        child = run_agent(memory_mb)
        write_state(state_dir, state="started", agent_pid=child.pid, restarts=failures)
        code = child.wait()
        if stopping or code == 0:
            write_state(state_dir, state="stopped", exit_code=code)
            return 0
        failures += 1
        if failures > max_retries:
            write_state(state_dir, state="failed", exit_code=code, restarts=failures - 1)
            return 1
        write_state(state_dir, state="starting", exit_code=code, restarts=failures)
        time.sleep(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS)) - 1])


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(Path(sys.argv[1])))

"""``make up``'s supervisor: runs the ASGI server, the django-q2 cluster and the agent watch, and stops all of it
together.

Each child gets its own process group, so Ctrl-C or SIGTERM here ends the children and everything they
started. The local provider's machines lead process groups of their own (a machine outlives the worker that
created it, as a Fly machine would), so on the way out ``manage.py stop_local_machines`` destroys them and ends
their sessions; nothing is left running.

``python -m velocity.run ROLE...`` runs only the named roles (``web``, ``worker``, ``bridge``): each Fly
process group is one role; the worker role is two processes, the django-q2 cluster and ``watch_agents``.
Either way the children share a fresh Prometheus multiprocess directory, and
with ``PROMETHEUS_ENABLED`` this process serves their metrics on ``METRICS_PORT``.

With the local provider, the machines run strangers' code on this host: at startup it warns when that
code cannot be given uids of its own (not root) and when ``HOST`` serves beyond loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

STOP_GRACE_SECONDS = 10
MACHINES_STOP_TIMEOUT = 60
PUBLIC_HOST = (
    "HOST is not a loopback address while the local provider runs untrusted code on this machine: "
    "serve on 127.0.0.1, or use the fly provider"
)

logger = logging.getLogger("velocity.run")


def startup_warnings(*, euid: int, host: str, provider: str) -> list[str]:
    """What is unsafe about running the local provider here (nothing for the fly provider)."""
    from machines.providers.local_sandbox import privilege_warning

    if provider != "local":
        return []
    warnings = [privilege_warning(euid=euid)]
    if not is_loopback(host):
        warnings.append(PUBLIC_HOST)
    return [warning for warning in warnings if warning]


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, start_new_session=True)  # noqa: S603  (argv is ours)


def _children(roles: list[str] | None = None) -> list[list[str]]:
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    python = sys.executable
    commands = {
        # Our request log middleware writes the access log (JSON in production); daphne's would duplicate it.
        "web": [
            python,
            "-m",
            "daphne",
            "-b",
            host,
            "-p",
            port,
            "--proxy-headers",
            "--access-log",
            os.devnull,
            # Realtime accepts frames up to 5 MB (payloads up to REALTIME_MAX_PAYLOAD_BYTES); daphne's 1 MB
            # default would drop the connection on a larger file:update instead of answering it.
            "--websocket-max-message-size",
            "5000000",
            "--websocket-max-frame-size",
            "5000000",
            "velocity.asgi:application",
        ],
        "worker": [python, "manage.py", "qcluster"],
        "bridge": [python, "manage.py", "realtime_bridge"],
    }
    # A role may run more than one process: the worker is the task cluster and the agent watch.
    extra = {"worker": [[python, "manage.py", "watch_agents"]]}
    if roles is None:
        roles = ["web", "worker", "bridge"] if os.environ.get("SUPABASE_URL") else ["web", "worker"]
    unknown = sorted(set(roles) - commands.keys())
    if unknown:
        raise SystemExit(f"velocity: unknown role(s) {', '.join(unknown)}; choose from {', '.join(commands)}")
    return [argv for role in roles for argv in [commands[role], *extra.get(role, [])]]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
    for process in processes:
        # The group may outlive its leader (workers, agents): make sure it is gone.
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _stop_local_machines() -> None:
    try:
        subprocess.run(  # noqa: S603  (argv is ours)
            [sys.executable, "manage.py", "stop_local_machines"], timeout=MACHINES_STOP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        print("velocity: stopping local machines timed out", flush=True)


def main(argv: list[str] | None = None) -> int:
    from velocity import metrics_exporter

    roles = list(argv if argv is not None else sys.argv[1:]) or None
    children = _children(roles)
    logging.basicConfig(level=logging.INFO, format="velocity: %(levelname)s %(message)s")
    provider = os.environ.get("MACHINE_PROVIDER", "local")
    for warning in startup_warnings(euid=os.geteuid(), host=os.environ.get("HOST", "127.0.0.1"), provider=provider):
        logger.warning(warning)
    metrics_exporter.prepare_multiprocess_dir()
    metrics_exporter.start_if_enabled()
    processes = [_spawn(argv) for argv in children]
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    exit_code = 0
    while not stopping:
        time.sleep(0.2)
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            print(f"velocity: child {dead[0].pid} exited with code {dead[0].returncode}; stopping", flush=True)
            exit_code = 1
            break
    _stop(processes)
    _stop_local_machines()
    print("velocity: stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

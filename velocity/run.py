"""``make up``'s supervisor: runs the ASGI server, the django-q2 cluster and the agent watch, and stops all of it
together.

Each child gets its own process group, so Ctrl-C or SIGTERM here ends the children and everything they
started. The local provider's machines lead process groups of their own (a machine outlives the worker that
created it, as a Fly machine would), so on the way out ``manage.py stop_local_machines`` destroys them and ends
their sessions (when the worker role ran: it is the one that makes them); nothing is left running.

With ``REDIS_URL`` set, the web role is ``WEB_CONCURRENCY`` daphne processes (default: the number of
cores), each on a listening socket of its own that this supervisor binds on the same port with
``SO_REUSEPORT`` and hands to it (``daphne --fd``), so the kernel spreads connections across them: one
Python process holds one core at most, and the channel layer (Redis) and the realtime hub (one per process,
reaching the others through the layer) are made for several. Without ``REDIS_URL`` the web is one process
whatever ``WEB_CONCURRENCY`` says: the in-memory channel layer cannot span processes.

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
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

STOP_GRACE_SECONDS = 10
LISTEN_BACKLOG = 1024
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


def web_processes(environ: dict[str, str] | os._Environ[str], cores: int | None) -> int:
    """How many daphne processes serve the web: ``WEB_CONCURRENCY`` (default the cores) with Redis, else 1."""
    if not environ.get("REDIS_URL"):
        return 1
    raw = environ.get("WEB_CONCURRENCY", "").strip()
    try:
        wanted = int(raw) if raw else (cores or 1)
    except ValueError:
        raise SystemExit(f"velocity: WEB_CONCURRENCY must be a whole number of processes, not {raw!r}") from None
    if wanted < 1:
        raise SystemExit(f"velocity: WEB_CONCURRENCY must be at least 1, not {wanted}")
    return wanted


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per daphne, all on ``host:port`` with ``SO_REUSEPORT``, each inherited by one child
    (``--fd``): the kernel spreads new connections across them. With one socket shared by every daphne, the
    one that woke first accepted a whole burst: 16 keep-alive clients all landed on one process while the
    other idled (docs/benchmarks.md, *REST under load*)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(listening_socket(host, port))
    except SystemExit:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def listening_socket(host: str, port: int) -> socket.socket:
    """A daphne's socket, bound here with ``SO_REUSEPORT`` beside its siblings and inherited by it (``--fd``)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"velocity: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    """A child in a process group of its own; a daphne inherits only its own listening socket (a daphne that
    held another's would keep that socket open after its owner died, and the connections the kernel sends
    there would wait forever)."""
    pass_fds = (int(argv[argv.index("--fd") + 1]),) if "--fd" in argv else ()
    env = child_environment(os.environ, web=argv[1:3] == ["-m", "daphne"])
    return subprocess.Popen(argv, start_new_session=True, pass_fds=pass_fds, env=env)  # noqa: S603  (argv is ours)


def child_environment(environ: Mapping[str, str], *, web: bool = False) -> dict[str, str]:
    """The children's environment: ours, with the daphnes freezing their startup objects out of the garbage
    collector unless ``WEB_GC_FREEZE`` says otherwise (velocity/gc_tuning.py), and each daphne (``web``) taking its
    PostgreSQL connections from a pool unless ``WEB_DATABASE_POOL`` says otherwise (never the task cluster,
    which forks its workers)."""
    defaults = {"WEB_GC_FREEZE": "true", **({"WEB_DATABASE_POOL": "true"} if web else {})}
    return {**defaults, **environ}


def _bind_arguments(fd: int | None) -> list[str]:
    if fd is not None:
        return ["--fd", str(fd)]
    return ["-b", os.environ.get("HOST", "127.0.0.1"), "-p", os.environ.get("PORT", "8000")]


def _children(roles: list[str] | None = None, *, web_fds: list[int] | None = None) -> list[list[str]]:
    python = sys.executable
    webs = [_daphne(python, fd) for fd in web_fds] if web_fds else [_daphne(python, None)]
    commands = {
        "web": webs[0],
        "worker": [python, "manage.py", "qcluster"],
        "bridge": [python, "manage.py", "realtime_bridge"],
    }
    # A role may run more than one process: the worker is the task cluster and the agent watch, the web a
    # daphne per listening socket.
    extra = {"worker": [[python, "manage.py", "watch_agents"]], "web": webs[1:]}
    if roles is None:
        roles = ["web", "worker", "bridge"] if os.environ.get("SUPABASE_URL") else ["web", "worker"]
    unknown = sorted(set(roles) - commands.keys())
    if unknown:
        raise SystemExit(f"velocity: unknown role(s) {', '.join(unknown)}; choose from {', '.join(commands)}")
    return [argv for role in roles for argv in [commands[role], *extra.get(role, [])]]


def _daphne(python: str, fd: int | None) -> list[str]:
    # Our request log middleware writes the access log (JSON in production); daphne's would duplicate it.
    return [
        python,
        "-m",
        "daphne",
        *_bind_arguments(fd),
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
    ]


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


def _plan(roles: list[str] | None) -> tuple[list[list[str]], list[socket.socket]]:
    """The children's command lines, and the daphnes' listening sockets when several serve the web."""
    count = web_processes(os.environ, os.cpu_count())
    if count == 1 or (roles is not None and "web" not in roles):
        if os.environ.get("WEB_CONCURRENCY", "1").strip() not in ("", "1") and not os.environ.get("REDIS_URL"):
            logger.warning("WEB_CONCURRENCY is ignored without REDIS_URL: the in-memory channel layer is one process")
        return _children(roles), []
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    sockets = listening_sockets(host, int(port), count)
    logger.info("web: %d processes on %s:%s", count, host, port)
    return _children(roles, web_fds=[sock.fileno() for sock in sockets]), sockets


def main(argv: list[str] | None = None) -> int:
    from velocity import metrics_exporter

    roles = list(argv if argv is not None else sys.argv[1:]) or None
    logging.basicConfig(level=logging.INFO, format="velocity: %(levelname)s %(message)s")
    children, web_sockets = _plan(roles)
    provider = os.environ.get("MACHINE_PROVIDER", "local")
    for warning in startup_warnings(euid=os.geteuid(), host=os.environ.get("HOST", "127.0.0.1"), provider=provider):
        logger.warning(warning)
    metrics_exporter.prepare_multiprocess_dir()
    metrics_exporter.start_if_enabled()
    processes = [_spawn(argv) for argv in children]
    for sock in web_sockets:
        sock.close()  # its daphne holds it; a new connection must never wait in ours
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
    if roles is None or "worker" in roles:  # the worker makes the machines; a web alone leaves them be
        _stop_local_machines()
    print("velocity: stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

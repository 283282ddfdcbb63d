"""Dev server: install dependencies, run, watch and restart the server (what to run: detection.py).

Only what the proxy needs leaks out: ``port`` (where the dev server listens on loopback), ``is_up``
and ``is_static`` (no dev server: the agent serves ``PROJECT_DIR`` itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .detection import (
    INSTALL_MARKER,
    INSTALL_TRIGGERS,
    DevPlan,
    detect,
    install_hash,
    manifest_signature,
    needs_install,
    read_bytes,
)
from .files import FileRefused, write_inside
from .ratelimit import TokenBucket
from .sandbox import Sandbox

logger = logging.getLogger(__name__)

LOG_LINES = 500
MAX_LINE_CHARS = 2000
SECRET_ENV = ("REALTIME_KEY", "MACHINE_TOKEN")
STABLE_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
LOOPBACKS = ("127.0.0.1", "::1")
# The first probes of a starting dev server come quickly (a fast one is seen at once), then settle.
FIRST_PROBE_SECONDS = 0.02
PROBE_SECONDS = 0.2
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

LogSink = Callable[[str, str], None]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(extra: dict[str, str], sandbox: Sandbox | None = None) -> dict[str, str]:
    """The dev server runs the user's code: it never sees the agent's credentials (nor, sandboxed,
    anything of the agent's environment beyond the basics)."""
    env = {key: value for key, value in os.environ.items() if key not in SECRET_ENV}
    if sandbox is not None:
        env = sandbox.environment(env)
    return {**env, **extra}


def clean_line(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\r\n")[:MAX_LINE_CHARS]


class LogBuffer:
    """The last ``LOG_LINES`` lines of install and dev-server output, for ``GET /logs``."""

    def __init__(self, size: int = LOG_LINES) -> None:
        self.lines: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, stream: str, line: str) -> None:
        self.lines.append({"t": round(time.time(), 3), "stream": stream, "line": line})


class LogThrottle:
    """Rate limit for ``agent:log``: bursts pass, floods are counted and summarised."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = TokenBucket(rate, burst or rate * 2, clock)
        self.suppressed = 0

    def take(self) -> tuple[bool, int]:
        """(allowed, lines suppressed since the last allowed line)."""
        if not self.bucket.try_take():
            self.suppressed += 1
            return False, 0
        dropped, self.suppressed = self.suppressed, 0
        return True, dropped


class DevServer:
    """Supervises install + dev server: restarts with backoff on crash and on package changes."""

    def __init__(
        self, project_dir: Path, *, port: int, dev_command: str, on_line: LogSink, sandbox: Sandbox | None = None
    ) -> None:
        self.project_dir, self.port, self.dev_command = project_dir, port, dev_command
        self.sandbox = sandbox
        self.logs = LogBuffer()
        self.on_line = on_line
        self.plan: DevPlan | None = None
        self.state = "idle"
        self.is_up = False
        self.host = LOOPBACKS[0]  # where is_up last found the dev server
        self.starts = 0
        self.install_seconds: float | None = None
        self.started_seconds: float | None = None
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._signature: tuple[tuple[int, int] | None, ...] = ()

    @property
    def is_static(self) -> bool:
        return self.plan is not None and self.plan.is_static

    @property
    def serving(self) -> bool:
        return self.is_static or self.is_up

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="devserver")
        self._watcher = asyncio.create_task(self._watch_manifests(), name="devserver-watch")

    async def _watch_manifests(self, interval: float = 1.0) -> None:
        """Changes that arrive by realtime are notified at once; this catches any other writer."""
        self._signature = manifest_signature(self.project_dir)
        while not self._stopping:
            await asyncio.sleep(interval)
            current = manifest_signature(self.project_dir)
            if current != self._signature:
                self._signature = current
                self._changed.set()

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    def notify_changed(self, paths: Iterable[str]) -> None:
        if any(path in INSTALL_TRIGGERS for path in paths):
            logger.info("package manifest changed; restarting dev server")
            self._changed.set()

    async def stop(self) -> None:
        self._stopping = True
        self._changed.set()
        await self._kill()
        for task in (self._task, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _line(self, stream: str, line: str) -> None:
        self.logs.add(stream, line)
        self.on_line(stream, line)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            self._changed.clear()
            self.plan = detect(self.project_dir, self.port, self.dev_command)
            if self.plan.is_static:
                failures = 0
                await self._serve_static()
                continue
            if needs_install(self.project_dir):
                await self._install()
            ran_for, changed = await self._run_once(self.plan)
            failures = 0 if changed or ran_for >= STABLE_AFTER_SECONDS else failures + 1
            if failures and not self._stopping:
                await self._backoff(failures)

    async def _serve_static(self) -> None:
        """Nothing to run: the agent serves the files until a package.json makes it a Node project."""
        self.state, self.is_up = "static", False
        self._ready.set()
        await self._changed.wait()

    async def _backoff(self, failures: int) -> None:
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
        self.state = "backoff"
        self._line("agent", f"dev server exited; restarting in {delay:g}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), delay)

    async def _install(self) -> None:
        self.state = "installing"
        package = read_bytes(self.project_dir / "package.json")
        self._line("agent", "npm install --no-audit --no-fund")
        started = time.monotonic()
        code = await self._run_to_end(("npm", "install", "--no-audit", "--no-fund"), {"NO_COLOR": "1"})
        self.install_seconds = round(time.monotonic() - started, 3)
        self._line("agent", f"npm install exited with {code} after {self.install_seconds:g}s")
        # npm writes the lockfile itself: that is not a change to react to. An edit to package.json
        # made during the install is, so then the marker is not written and the next pass reinstalls.
        self._signature = manifest_signature(self.project_dir)
        wanted = install_hash(self.project_dir)
        if code == 0 and wanted is not None and package == read_bytes(self.project_dir / "package.json"):
            # node_modules is the user's: written like an edit, so a symlink there cannot send it elsewhere.
            owner = self.sandbox.owner if self.sandbox else None
            try:
                write_inside(self.project_dir, ("node_modules", INSTALL_MARKER), wanted.encode(), owner=owner)
            except (FileRefused, OSError):
                self._line("agent", "node_modules is not a folder of the project; not marking the install")
                return
            self._changed.clear()

    async def _run_to_end(self, argv: tuple[str, ...], env: dict[str, str]) -> int:
        try:
            process = await self._spawn(argv, env)
        except OSError as error:
            self._line("agent", f"cannot run {argv[0]}: {error.strerror}")
            return 127
        self._process = process
        await self._pump(process)
        return await process.wait()

    async def _run_once(self, plan: DevPlan) -> tuple[float, bool]:
        """Run the dev server until it exits or a package change asks for a restart."""
        self.state, started = "starting", time.monotonic()
        try:
            process = await self._spawn(plan.argv, plan.env)
        except OSError as error:
            self._line("agent", f"cannot start {plan.kind} dev server: {error.strerror}")
            return 0.0, False
        self._process = process
        self._line("agent", f"started {plan.kind} dev server (pid {process.pid}) on port {self.port}")
        watchers = [
            asyncio.create_task(self._pump(process)),
            asyncio.create_task(self._probe(process, started)),
        ]
        changed = asyncio.create_task(self._changed.wait())
        await asyncio.wait([changed, asyncio.create_task(process.wait())], return_when=asyncio.FIRST_COMPLETED)
        restart = changed.done()
        changed.cancel()
        await self._kill()
        for task in watchers:
            task.cancel()
        self.is_up = False
        self.state = "restarting" if restart else "exited"
        if not restart:
            self._line("agent", f"dev server exited with {process.returncode}")
        return time.monotonic() - started, restart

    async def _probe(self, process: asyncio.subprocess.Process, started: float) -> None:
        """Watch the port: every 20 ms at first, doubling to every 200 ms, so a fast dev server is seen
        listening within a few milliseconds; every 5 s once up."""
        down_wait = FIRST_PROBE_SECONDS
        while process.returncode is None:
            host = await listening_host(self.port)
            up = host is not None
            self.host = host or self.host
            if up and not self.is_up:
                self.started_seconds = round(time.monotonic() - started, 3)
                self.state, self.starts = "running", self.starts + 1
                self._ready.set()
            self.is_up = up
            await asyncio.sleep(5.0 if up else down_wait)
            down_wait = min(down_wait * 2, PROBE_SECONDS)

    async def _spawn(self, argv: tuple[str, ...], env: dict[str, str]) -> asyncio.subprocess.Process:
        identity = self.sandbox.popen_kwargs() if self.sandbox is not None else {}
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.project_dir,
            env=child_env(env, self.sandbox),
            **identity,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: a restart kills the whole tree
            limit=1 << 20,
        )

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        streams = [("stdout", process.stdout), ("stderr", process.stderr)]
        await asyncio.gather(*(self._read_lines(name, stream) for name, stream in streams if stream))

    async def _read_lines(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the reader's limit: take it in pieces
                raw = await stream.read(1 << 16)
            if not raw:
                return
            self._line(name, clean_line(raw))

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
                return


async def listening_host(port: int) -> str | None:
    """Which loopback address the dev server listens on: scripts that bind "localhost" may get
    only ::1 (Node 17+ prefers IPv6 for it)."""
    for host in LOOPBACKS:
        if await port_open(port, host):
            return host
    return None


async def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True

"""Dev server: detect the project kind, install dependencies, run, watch and restart the server.

Only what the proxy needs leaks out: ``port`` (where the dev server listens on loopback), ``is_up``
and ``is_static`` (no dev server: the agent serves ``PROJECT_DIR`` itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_LINES = 500
MAX_LINE_CHARS = 2000
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
INSTALL_TRIGGERS = frozenset({"package.json", *LOCKFILES})
INSTALL_MARKER = ".velocity-install-hash"
SECRET_ENV = ("REALTIME_KEY", "MACHINE_TOKEN")
STABLE_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class DevPlan:
    kind: str  # vite | next | expo | cra | npm-dev | npm-start | custom | static
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_static(self) -> bool:
        return self.kind == "static"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_package(project_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((project_dir / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def detect(project_dir: Path, port: int, dev_command: str = "") -> DevPlan:
    env = {"PORT": str(port), "HOST": "127.0.0.1", "BROWSER": "none", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    if dev_command:
        return DevPlan("custom", ("/bin/sh", "-c", dev_command), env)
    package = read_package(project_dir)
    if package is None:
        return DevPlan("static")
    deps = {**_dict(package.get("devDependencies")), **_dict(package.get("dependencies"))}
    scripts = _dict(package.get("scripts"))
    plan = _framework_plan(project_dir, deps, port, env)
    if plan is not None:
        return plan
    if "dev" in scripts:
        return DevPlan("npm-dev", ("npm", "run", "dev"), env)
    if "start" in scripts:
        return DevPlan("npm-start", ("npm", "start"), env)
    return DevPlan("static")


def _framework_plan(project_dir: Path, deps: dict[str, Any], port: int, env: dict[str, str]) -> DevPlan | None:
    def tool(name: str) -> str:
        local = project_dir / "node_modules" / ".bin" / name
        return str(local) if local.exists() else (shutil.which(name) or name)

    p = str(port)
    if "next" in deps:
        return DevPlan("next", (tool("next"), "dev", "--hostname", "127.0.0.1", "--port", p), env)
    if "expo" in deps:
        argv = (tool("expo"), "start", "--web", "--port", p, "--host", "localhost")
        return DevPlan("expo", argv, {**env, "CI": "1", "EXPO_NO_TELEMETRY": "1"})
    if "vite" in deps:
        return DevPlan("vite", (tool("vite"), "--host", "127.0.0.1", "--port", p, "--strictPort"), env)
    if "react-scripts" in deps:
        # WDS_SOCKET_PORT=0: the HMR socket uses the page's own port, i.e. comes through the proxy.
        return DevPlan("cra", (tool("react-scripts"), "start"), {**env, "WDS_SOCKET_PORT": "0"})
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def install_hash(project_dir: Path) -> str | None:
    """Hash of package.json and the lockfile; None when there is nothing to install."""
    if not (project_dir / "package.json").is_file():
        return None
    digest = hashlib.sha256()
    for name in ("package.json", *LOCKFILES):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + b"\0" + (project_dir / name).read_bytes())
    return digest.hexdigest()


def needs_install(project_dir: Path) -> bool:
    wanted = install_hash(project_dir)
    if wanted is None:
        return False
    try:
        return (project_dir / "node_modules" / INSTALL_MARKER).read_text() != wanted
    except OSError:
        return True


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The dev server runs the user's code: it never sees the agent's credentials."""
    env = {key: value for key, value in os.environ.items() if key not in SECRET_ENV}
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
    """Token bucket for ``agent:log``: bursts pass, floods are counted and summarised."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, burst or rate * 2, clock
        self.tokens, self.updated, self.suppressed = self.capacity, clock(), 0

    def take(self) -> tuple[bool, int]:
        """(allowed, lines suppressed since the last allowed line)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            self.suppressed += 1
            return False, 0
        self.tokens -= 1
        dropped, self.suppressed = self.suppressed, 0
        return True, dropped


class DevServer:
    """Supervises install + dev server: restarts with backoff on crash and on package changes."""

    def __init__(self, project_dir: Path, *, port: int, dev_command: str, on_line: LogSink) -> None:
        self.project_dir, self.port, self.dev_command = project_dir, port, dev_command
        self.logs = LogBuffer()
        self.on_line = on_line
        self.plan: DevPlan | None = None
        self.state = "idle"
        self.is_up = False
        self.starts = 0
        self.install_seconds: float | None = None
        self.started_seconds: float | None = None
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_static(self) -> bool:
        return self.plan is not None and self.plan.is_static

    @property
    def serving(self) -> bool:
        return self.is_static or self.is_up

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="devserver")

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _line(self, stream: str, line: str) -> None:
        self.logs.add(stream, line)
        self.on_line(stream, line)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            self._changed.clear()
            self.plan = detect(self.project_dir, self.port, self.dev_command)
            if self.plan.is_static:
                failures = await self._serve_static()
                continue
            if needs_install(self.project_dir):
                await self._install()
            ran_for, changed = await self._run_once(self.plan)
            failures = 0 if changed or ran_for >= STABLE_AFTER_SECONDS else failures + 1
            if failures and not self._stopping:
                await self._backoff(failures)

    async def _serve_static(self) -> int:
        self.state, self.is_up = "static", False
        self._ready.set()
        await self._changed.wait()
        return 0

    async def _backoff(self, failures: int) -> None:
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
        self.state = "backoff"
        self._line("agent", f"dev server exited; restarting in {delay:g}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), delay)

    async def _install(self) -> None:
        self.state = "installing"
        wanted = install_hash(self.project_dir)
        self._line("agent", "npm install --no-audit --no-fund")
        started = time.monotonic()
        code = await self._run_to_end(("npm", "install", "--no-audit", "--no-fund"), {"NO_COLOR": "1"})
        self.install_seconds = round(time.monotonic() - started, 3)
        if code == 0 and wanted is not None:
            (self.project_dir / "node_modules").mkdir(exist_ok=True)
            (self.project_dir / "node_modules" / INSTALL_MARKER).write_text(wanted)
        self._line("agent", f"npm install exited with {code} after {self.install_seconds:g}s")

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
        while process.returncode is None:
            up = await port_open(self.port)
            if up and not self.is_up:
                self.started_seconds = round(time.monotonic() - started, 3)
                self.state, self.starts = "running", self.starts + 1
                self._ready.set()
            self.is_up = up
            await asyncio.sleep(5.0 if up else 0.2)

    async def _spawn(self, argv: tuple[str, ...], env: dict[str, str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.project_dir,
            env=child_env(env),
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


async def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True

"""Composition: boot steps, the ready/status/activity/exit reports, and the inactivity exit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .config import Config
from .devserver import DevServer, LogThrottle, free_port
from .files import FileStore
from .messages import Result, handle_event, manifest_events
from .orchestrator import Orchestrator
from .proxy import Front
from .resources import ResourceMeter
from .sandbox import sandbox_warning
from .sync import RealtimeSync, WarmSocket

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 600.0
# What each heartbeat carries, named as in /health.
HEARTBEAT_KEYS = ("devServer", "devServerState", "supabaseConnected", "fileCount", "uptime")
# The first heartbeat waits at most this long for `ready` to go out first (a slow npm install does not hold it).
FIRST_REPORT_DELAY_SECONDS = 1.0
# A cold agent starts its realtime client after `ready` is out, or after this long if the preview is slower.
REALTIME_AFTER_READY_MAX_SECONDS = 0.5


class Activity:
    """When something last happened (file writes, preview requests) and how often since the last report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()
        self.last_at = datetime.now(UTC)
        self.counts: Counter[str] = Counter()

    def touch(self, kind: str, count: int = 1) -> None:
        self.reset()
        self.counts[kind] += count

    def idle_seconds(self) -> float:
        return self.clock() - self.last

    def reset(self) -> None:
        """Idle time starts again without counting as reportable activity."""
        self.last, self.last_at = self.clock(), datetime.now(UTC)

    def take_counts(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.boot: dict[str, float] = {}
        self.activity = Activity()
        self.meter = ResourceMeter()
        sandbox = config.sandbox
        self.store = FileStore(
            config.project_dir, max_bytes=config.max_file_bytes, owner=sandbox.owner if sandbox else None
        )
        if sandbox is not None:
            sandbox.prepare(self.store.root)
        self.throttle = LogThrottle(config.log_rate_per_second)
        self.devserver = DevServer(
            self.store.root,
            port=config.dev_port or free_port(),
            dev_command=config.dev_command,
            on_line=self._on_line,
            sandbox=sandbox,
        )
        self.orchestrator = Orchestrator(
            config.orchestrator_url,
            config.machine_token,
            project_id=config.project_id,
            session_id=config.session_id,
        )
        self.sync: RealtimeSync | None = None
        self.warm_socket: WarmSocket | None = None
        self._stop = asyncio.Event()
        self._ready_sent = asyncio.Event()
        self.exit_reason = "idle"

    async def run(self) -> int:
        self._install_signal_handlers()
        front = Front(devserver=self.devserver, root=self.store.root, health=self.health, on_request=self._on_request)
        server = await self._step("http", front.serve(self.config.host, self.config.port))
        logger.info("agent listening", extra={"port": self.config.port, "dev_port": self.devserver.port})
        self._log_identity()
        try:
            await self._boot_and_wait()
        finally:
            await self._shutdown(server)
        return 0

    def _log_identity(self) -> None:
        sandbox = self.config.sandbox
        if sandbox is not None:
            logger.info("user code runs as an unprivileged uid", extra={"uid": sandbox.uid, "gid": sandbox.gid})
        warning = sandbox_warning(os.environ, euid=os.geteuid())
        if warning is not None:
            logger.warning(warning)

    async def _boot_and_wait(self) -> None:
        warm = not self.config.project_id
        preload = self._preload_realtime() if warm else None
        held = self._hold_warm_socket(preload)
        if warm:
            await self._step("assignment", self._wait_for_assignment())
            if self._stop.is_set():
                return
        started = time.monotonic()
        self.store.scan()
        self.boot["scan"] = round(time.monotonic() - started, 3)
        background = [asyncio.create_task(self._report_ready())]
        if self.config.realtime_url:
            self.sync = self._make_sync()
            background.append(asyncio.create_task(self._run_realtime(self.sync, preload), name="realtime"))
        self.devserver.start()
        reports = (self._watch_status(), self._report_activity(), self._heartbeat())
        background += [asyncio.create_task(coro) for coro in reports]
        try:
            await self._watch_inactivity()
        finally:
            for task in [*background, *(task for task in (preload, held) if task)]:
                task.cancel()

    def _preload_realtime(self) -> asyncio.Task[Any] | None:
        """A warm agent imports the realtime client (about 0.8 s, mostly pydantic) in a thread from its first
        moment: it is loaded long before the claim."""
        if not self.config.realtime_url:
            return None
        return asyncio.create_task(asyncio.to_thread(importlib.import_module, "realtime"), name="realtime-import")

    def _hold_warm_socket(self, preload: asyncio.Task[Any] | None) -> asyncio.Task[None] | None:
        """With its machine's warm key, a warm agent also connects once the client is loaded (``WarmSocket``):
        at the claim only the join is left to do."""
        if preload is None or not self.config.realtime_key:
            return None
        self.warm_socket = WarmSocket(self.config.realtime_url, self.config.realtime_key)

        async def hold(socket: WarmSocket) -> None:
            await preload
            await socket.run()

        return asyncio.create_task(hold(self.warm_socket), name="realtime-warm")

    async def _run_realtime(self, sync: RealtimeSync, preload: asyncio.Task[Any] | None) -> None:
        """The realtime client, once its module is loaded in a thread: never imported on the event loop, which it
        would block for most of a second. A cold agent loads it once ``ready`` is out (or after
        ``REALTIME_AFTER_READY_MAX_SECONDS``): the import holds the GIL in bursts, and while it ran every step of
        the agent's first report waited for it (the ready report went out at 0.26 s instead of 0.11 s)."""
        if preload is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready_sent.wait(), REALTIME_AFTER_READY_MAX_SECONDS)
            await asyncio.to_thread(importlib.import_module, "realtime")
        else:
            await preload
        await sync.run()

    async def _wait_for_assignment(self) -> None:
        """Warm pool: idle until the orchestrator assigns a project (or the machine is stopped)."""
        if not self.config.orchestrator_url:
            logger.error("no PROJECT_ID and no ORCHESTRATOR_URL to ask for one; waiting for a signal")
            await self._stop.wait()
            return
        poll = asyncio.create_task(self.orchestrator.wait_for_assignment(self.config.assignment_poll_interval))
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not poll.done():
            poll.cancel()
            return
        self.config = self.config.with_assignment(**poll.result())
        self.orchestrator.project_id = self.config.project_id
        self.orchestrator.session_id = self.config.session_id
        self.activity.reset()
        logger.info("assigned", extra={"project_id": self.config.project_id})

    def _make_sync(self) -> RealtimeSync:
        return RealtimeSync(
            self.config.realtime_url,
            self.config.realtime_key,
            self.config.channel_name,
            handle=self._handle,
            manifest=functools.partial(manifest_events, self.store),
            send_rate=self.config.realtime_send_rate,
            warm_client=self.warm_socket.take() if self.warm_socket else None,
        )

    async def _step(self, name: str, awaitable: Any) -> Any:
        started = time.monotonic()
        result = await awaitable
        self.boot[name] = round(time.monotonic() - started, 3)
        return result

    def _handle(self, event: str, payload: dict[str, Any]) -> Result:
        result = handle_event(self.store, event, payload)
        if result.changed:
            self.activity.touch("file_writes", len(result.changed))
            self.devserver.notify_changed(result.changed)
        return result

    def _on_request(self) -> None:
        self.activity.touch("preview_requests")

    def _on_line(self, stream: str, line: str) -> None:
        if self.sync is None or not self.sync.connected:
            return
        allowed, dropped = self.throttle.take()
        if dropped:
            note = f"[agent] {dropped} log lines not sent (rate limit); GET /logs has them"
            self.sync.publish("agent:log", {"stream": "agent", "line": note}, droppable=True)
        if allowed:
            self.sync.publish("agent:log", {"stream": stream, "line": line}, droppable=True)

    def health(self) -> dict[str, Any]:
        plan = self.devserver.plan
        return {
            "status": "ok",
            "devServer": self.devserver.serving,
            "supabaseConnected": self.sync is not None and self.sync.connected,
            "projectId": self.config.project_id or None,
            "sessionId": self.config.session_id or None,
            "fileCount": self.store.file_count,
            "lastActivity": self.activity.last_at.isoformat(),
            "idleSeconds": round(self.activity.idle_seconds(), 1),
            "uptime": round(time.monotonic() - self.started, 1),
            "devServerKind": plan.kind if plan else None,
            "devServerState": self.devserver.state,
            "version": __version__,
        }

    def _status(self) -> dict[str, Any]:
        health = self.health()
        return {key: health[key] for key in ("devServer", "supabaseConnected", "devServerState", "fileCount")}

    async def _report_ready(self) -> None:
        """``ready`` the moment the preview answers. The realtime join is not waited for: whatever the editor
        sends before it is recovered by the ``agent:manifest`` published on join, and ``status`` reports the
        join (``supabaseConnected``) when it happens."""
        up = await self.devserver.wait_ready(READY_TIMEOUT_SECONDS)
        boot = {
            **self.boot,
            "dev_server_start": self.devserver.started_seconds,
            "npm_install": self.devserver.install_seconds,
        }
        if self.sync is not None:
            boot["realtime_connect"] = self.sync.first_connect_seconds
        boot["total"] = round(time.monotonic() - self.started, 3)
        try:
            await self.orchestrator.send(
                "ready",
                boot_steps=boot,
                dev_server=up,
                dev_server_kind=self.devserver.plan.kind if self.devserver.plan else None,
            )
        finally:
            self._ready_sent.set()

    async def _ready_first(self) -> None:
        """The first status and heartbeat wait for ``ready`` to be sent (at most ``FIRST_REPORT_DELAY_SECONDS``):
        three reports at once would make ``ready`` queue behind the other two for the orchestrator's writes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready_sent.wait(), FIRST_REPORT_DELAY_SECONDS)

    async def _watch_status(self) -> None:
        await self._ready_first()
        last: dict[str, Any] = {}
        while True:
            status = self._status()
            if status != last:
                last = status
                await self.orchestrator.send("status", attempts=1, **status)
            await asyncio.sleep(1.0)

    async def _heartbeat(self) -> None:
        """Tell the orchestrator every ``AGENT_HEARTBEAT_SECONDS`` that this agent runs, and how it is: their
        absence is how the orchestrator sees a hung agent (it restarts the machine)."""
        await self._ready_first()
        while True:
            health = self.health()
            beat = {key: health[key] for key in HEARTBEAT_KEYS}
            if self.sync is None:
                del beat["supabaseConnected"]  # no realtime configured: nothing to be joined on, so nothing to say
            beat.update(self.meter.sample())  # cpuRatio (since the last beat) and memoryRatio of this machine
            await self.orchestrator.send("heartbeat", attempts=1, **beat)
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _report_activity(self) -> None:
        interval = self.config.activity_report_interval
        while True:
            await asyncio.sleep(interval)
            counts = self.activity.take_counts()
            if counts:
                source = max(counts, key=counts.__getitem__)  # the orchestrator records one source
                last_at = self.activity.last_at.isoformat()
                await self.orchestrator.send("activity", attempts=1, source=source, last_activity_at=last_at, **counts)

    async def _watch_inactivity(self) -> None:
        timeout = self.config.inactivity_timeout
        while not self._stop.is_set():
            idle = self.activity.idle_seconds()
            if idle >= timeout:
                logger.info("inactive; exiting", extra={"idle_seconds": round(idle, 1)})
                self.exit_reason = "idle"
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(timeout - idle, 5.0) + 0.01)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self.exit_reason = "signal"
        self._stop.set()

    async def _shutdown(self, server: asyncio.Server) -> None:
        idle = round(self.activity.idle_seconds(), 1)
        await self.orchestrator.send("exit", attempts=2, reason=self.exit_reason, idle_seconds=idle)
        server.close()
        await self.devserver.stop()

"""Fixtures that run the agent as a real ``python -m preview_agent`` subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from velocity.testing import free_port, wait_until

from .realtime_helpers import Editor, Relay, until

REPO_ROOT = Path(__file__).resolve().parents[2]
MACHINE_TOKEN = "test-machine-token"


@dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    url: str
    project_dir: Path
    log_path: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def health(self) -> dict[str, Any]:
        return dict(self.get("/health").json())

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def spawn_agent(project: Path, log_dir: Path, *, wait: bool = True, **env: str) -> AgentProcess:
    """``python -m preview_agent`` on a free port, its output in ``log_dir``; by default, once it answers."""
    project.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {**os.environ, "PROJECT_ID": "proj-1", "SESSION_ID": "sess-1", "PROJECT_DIR": str(project)}
    full_env |= {"PORT": str(port), "HOST": "127.0.0.1", "MACHINE_TOKEN": MACHINE_TOKEN, "LOG_FORMAT": "json"}
    full_env |= {"PYTHONPATH": str(REPO_ROOT), "REALTIME_URL": "", "ORCHESTRATOR_URL": "", **env}
    log_path = log_dir / f"agent-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "preview_agent"], env=full_env, stdout=log, stderr=log)
    agent = AgentProcess(process, f"http://127.0.0.1:{port}", project, log_path)
    if wait:
        try:
            wait_until(lambda: _answers(agent), timeout=15)
        except AssertionError:
            agent.stop()
            raise
    return agent


StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    started: list[AgentProcess] = []

    def start(project_dir: Path | None = None, wait: bool = True, **env: str) -> AgentProcess:
        agent = spawn_agent(project_dir or tmp_path / "project", tmp_path, wait=wait, **env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def _answers(agent: AgentProcess) -> bool:
    if agent.process.poll() is not None:
        raise AssertionError("agent exited early:\n" + agent.output())
    try:
        return agent.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Recorder:
    """A stand-in orchestrator that records what the agent posts (the real API is built elsewhere)."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    assignments: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("type") == kind]


@pytest.fixture
def orchestrator() -> Iterator[Recorder]:
    recorder = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            recorder.events.append(json.loads(self.rfile.read(length)))
            recorder.headers.append(dict(self.headers))
            self._reply(202, {"ok": True})

        def do_GET(self) -> None:
            recorder.headers.append(dict(self.headers))
            status, body = recorder.assignments.pop(0) if recorder.assignments else (204, None)
            self._reply(status, body)

        def _reply(self, status: int, body: dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield recorder
    server.shutdown()


# --- an agent on the realtime endpoint, with an editor (test_agent_realtime.py, test_agent_resync.py) ---


@dataclass
class Session:
    agent: AgentProcess
    editor: Editor
    relay: Relay
    outside: Path
    join_editor: Callable[[], Awaitable[Editor]]
    base_url: str  # the realtime endpoint itself (the agent goes through ``relay``)
    project_id: str
    key: str


@pytest.fixture
def realtime(realtime_endpoint: tuple[str, Callable[[str], str]]) -> tuple[str, Callable[[str], str]]:
    return realtime_endpoint


@pytest.fixture
def relay(realtime: tuple[str, Callable[[str], str]]) -> Iterator[Relay]:
    relay = Relay(urlsplit(realtime[0]).port or 80)
    yield relay
    relay.close()


@pytest.fixture
async def session(
    realtime: tuple[str, Callable[[str], str]], relay: Relay, start_agent: StartAgent, tmp_path: Path
) -> AsyncIterator[Session]:
    base_url, project_key = realtime
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    project = tmp_path / "project"
    project.mkdir()
    (project / "index.html").write_text("<h1>boot</h1>")
    (project / "escape").symlink_to(outside, target_is_directory=True)
    relayed = base_url.replace(f":{urlsplit(base_url).port}", f":{relay.port}", 1)
    env = {"PROJECT_ID": project_id, "REALTIME_URL": relayed, "REALTIME_KEY": project_key(project_id)}
    agent = await asyncio.to_thread(start_agent, project, MAX_FILE_BYTES="2048", **env)
    editor = await Editor.join(base_url, project_key(project_id), project_id)
    await until(lambda: agent.health()["supabaseConnected"])
    editors = [editor]

    async def join_editor() -> Editor:
        editors.append(await Editor.join(base_url, project_key(project_id), project_id))
        return editors[-1]

    yield Session(agent, editor, relay, outside, join_editor, base_url, project_id, project_key(project_id))
    for each in editors:
        await each.leave()

"""Path traversal and symlink escapes against a real preview agent.

The agent runs as a process on an empty project whose folder holds two planted symlinks pointing
outside it (a directory link and a file link). The attacker sends ``file:update`` and ``file:delete``
through the realtime endpoint with hostile paths. Every one must be refused with ``agent:error`` and a
code, and nothing outside the project may change (the outside folder is hashed before and after).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.stack import REPO_ROOT, free_port, stop_group
from resilience.context import Context, connect, join, token
from resilience.report import Outcome

HOSTILE_PATHS = [
    "../escape.txt",
    "../../escape.txt",
    "src/../../escape.txt",
    "/tmp/escape.txt",  # noqa: S108  (the attack, not a temp file of ours)
    "..\\escape.txt",
    "\uff0e\uff0e/escape.txt",  # fullwidth dots
    "a/\u2025/escape.txt",
    "dirlink/escape.txt",
    "filelink",
    "a\x00b.txt",
    "./escape.txt",
    "C:/escape.txt",
    "x" * 5000,
    "",
]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@contextlib.contextmanager
def agent_process(ctx: Context, root: Path, project_id: str) -> Iterator[int]:
    project, outside = root / "project", root / "outside"
    project.mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch")
    (project / "dirlink").symlink_to(outside, target_is_directory=True)
    (project / "filelink").symlink_to(outside / "secret.txt")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "PROJECT_ID": project_id,
        "PROJECT_DIR": str(project),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "REALTIME_URL": f"{ctx.stack.base_url}/realtime/v1",
        "REALTIME_KEY": token(uuid.uuid4(), velocity_project=project_id, velocity_machine=str(uuid.uuid4())),
    }
    process = subprocess.Popen(  # noqa: S603  (our interpreter, our module)
        [sys.executable, "-m", "preview_agent"], env=env, cwd=REPO_ROOT, start_new_session=True
    )
    try:
        yield port
    finally:
        stop_group(process)


def wait_joined(port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("supabaseConnected"):
                return True
        time.sleep(0.2)
    return False


async def send_hostile(ctx: Context, project_id: str) -> list[dict[str, Any]]:
    """Send every hostile update and delete; return the agent's replies (``agent:error`` / ``file:synced``)."""
    socket = await connect(ctx.ws_url(token(role="service_role")))
    topic = f"project:{project_id}"
    await join(socket, topic)
    for index, path in enumerate(HOSTILE_PATHS):
        for event, payload in (
            ("file:update", {"path": path, "content": "pwned", "encoding": "utf-8", "version": index + 1}),
            ("file:delete", {"path": path, "version": index + 100}),
        ):
            body = {"type": "broadcast", "event": event, "payload": payload}
            await socket.send(
                json.dumps(
                    {"topic": f"realtime:{topic}", "event": "broadcast", "payload": body, "ref": None, "join_ref": "1"}
                )
            )
    replies: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while len(replies) < 2 * len(HOSTILE_PATHS):
                frame = json.loads(await socket.recv())
                if frame.get("event") == "broadcast":
                    replies.append(frame["payload"])
    await socket.close()
    return replies


def run(ctx: Context, out: Outcome) -> None:
    project_id = f"paths-{uuid.uuid4().hex[:8]}"
    root = ctx.stack.root / f"agent-{project_id}"
    with agent_process(ctx, root, project_id) as port:
        out.step(f"started a preview agent for {project_id} with symlinks to a folder outside its project")
        if not out.check(wait_joined(port), "the agent joined its channel", "the agent never joined its channel"):
            return
        before = tree_digest(root / "outside")
        replies = asyncio.run(send_hostile(ctx, project_id))
        out.step(f"sent {len(HOSTILE_PATHS)} hostile paths as file:update and file:delete")
        report(out, replies, before, root)


def report(out: Outcome, replies: list[dict[str, Any]], before: dict[str, str], root: Path) -> None:
    errors = [r["payload"] for r in replies if r.get("event") == "agent:error"]
    synced = [r["payload"] for r in replies if r.get("event") == "file:synced"]
    codes = sorted({str(e.get("code")) for e in errors})
    # Writing "filelink" may replace the link itself inside the project (atomic rename): not an escape.
    accepted = [s.get("path") for s in synced if s.get("path") != "filelink"]
    out.check(not accepted, f"{len(errors)} refusals with codes {codes}", f"the agent acknowledged {accepted}")
    answered = len(errors) + len(synced)
    out.check(
        answered == 2 * len(HOSTILE_PATHS),
        "every hostile request was answered (error or, for the link, synced)",
        f"only {answered} of {2 * len(HOSTILE_PATHS)} requests were answered",
    )
    out.check(tree_digest(root / "outside") == before, "the outside folder is unchanged", "the outside folder changed")
    escaped = [p for p in (root / "escape.txt", Path("/tmp/escape.txt"), root.parent / "escape.txt") if p.exists()]  # noqa: S108
    out.check(not escaped, "no escape.txt anywhere outside the project", f"files written outside: {escaped}")

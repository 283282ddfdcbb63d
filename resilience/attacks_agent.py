"""Path traversal and symlink escapes against a real preview agent.

The agent is a real session's, provisioned by the task cluster with the key the orchestrator issued
it; two symlinks pointing outside its project are planted in its folder (a directory link and a file
link). The project's owner, as the attacker, sends ``file:update`` and ``file:delete`` through the
realtime endpoint with hostile paths. Every one must be refused with ``agent:error`` and a
code, and nothing outside the project may change (the outside folder is hashed before and after).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.time_to_preview import create_and_join, end_session, user_headers
from resilience.context import Context, connect, join, machine_env, token
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


def plant_links(project: Path, outside: Path) -> None:
    """A folder outside the project with a secret, linked from inside it (as a symlink in a repo would be)."""
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch")
    (project / "dirlink").symlink_to(outside, target_is_directory=True)
    (project / "filelink").symlink_to(outside / "secret.txt")


@contextlib.contextmanager
def live_session(ctx: Context, user: uuid.UUID, project_id: str) -> Iterator[dict[str, Any]]:
    """A session provisioned by the real cluster until ``active`` (its agent has joined), ended afterwards."""
    headers = user_headers(user)
    ctx.stack.start_cluster()
    try:
        with httpx.Client(timeout=30) as client:
            session = create_and_join(client, ctx.stack.base_url, headers, project_id).session
            try:
                yield session
            finally:
                end_session(client, ctx.stack.base_url, headers, session["id"])
    finally:
        ctx.stack.stop_cluster()


async def send_hostile(ctx: Context, user: uuid.UUID, project_id: str) -> list[dict[str, Any]]:
    """Send every hostile update and delete; return the agent's replies (``agent:error`` / ``file:synced``)."""
    socket = await connect(ctx.ws_url(token(user)))
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
    user, project_id = uuid.uuid4(), f"paths-{uuid.uuid4().hex[:8]}"
    with live_session(ctx, user, project_id) as session:
        project = Path(machine_env(ctx, session["id"])["PROJECT_DIR"])
        outside = ctx.stack.root / f"outside-{project_id}"
        plant_links(project, outside)
        out.step(f"session {session['id']} active; symlinks in its agent's project point to {outside}")
        before = tree_digest(outside)
        replies = asyncio.run(send_hostile(ctx, user, project_id))
        out.step(f"the owner sent {len(HOSTILE_PATHS)} hostile paths as file:update and file:delete")
        report(out, replies, before, project, outside)


def report(out: Outcome, replies: list[dict[str, Any]], before: dict[str, str], project: Path, outside: Path) -> None:
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
    out.check(tree_digest(outside) == before, "the outside folder is unchanged", "the outside folder changed")
    places = (project.parent, project.parent.parent, outside, outside.parent, Path("/tmp"))  # noqa: S108
    escaped = [place / "escape.txt" for place in places if (place / "escape.txt").exists()]
    out.check(not escaped, "no escape.txt anywhere outside the project", f"files written outside: {escaped}")

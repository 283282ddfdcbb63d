"""The agent inside the ``supabase`` limits profile: a fast typist's edits, paced and coalesced by the editor,
all reach the agent's disk, the newest version of every file is acknowledged, and the endpoint never shuts a
channel for its per-project rate (100 events a second, fan-out counted)."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from realtime_bridge.testing import RealtimeServer, service_token

from .conftest import StartAgent
from .realtime_helpers import Editor, acks, until

pytestmark = pytest.mark.slow

PATHS = 5
TYPED_PER_SECOND = 100
BATCHES_PER_SECOND = 8


@pytest.fixture
async def supabase_endpoint(django_db_setup: None) -> AsyncIterator[str]:
    """An endpoint with exactly the supabase profile, counting alone (no Redis shared with other servers)."""
    with tempfile.TemporaryDirectory(prefix="velocity-rt-supabase-") as var_dir:
        server = RealtimeServer(Path(var_dir), REALTIME_LIMITS_PROFILE="supabase", REDIS_URL="")
        await asyncio.to_thread(server.start)
        try:
            yield server.http_base
        finally:
            await asyncio.to_thread(server.stop)


async def type_and_send(editor: Editor, seconds: float) -> dict[str, tuple[int, str]]:
    """Type ``TYPED_PER_SECOND`` edits a second; send the newest of each path every 1/8 s. Returns what was
    typed last per path (version, sha256)."""
    typed: dict[str, tuple[int, str]] = {}
    pending: dict[str, dict[str, Any]] = {}
    began, count, next_batch = time.monotonic(), int(seconds * TYPED_PER_SECOND), 0.0
    for index in range(count):
        path, version, content = f"src/f{index % PATHS}.ts", index // PATHS + 1, f"// edit {index}\n"
        typed[path] = (version, hashlib.sha256(content.encode()).hexdigest())
        pending[path] = {"path": path, "content": content, "encoding": "utf-8", "version": version}
        if time.monotonic() >= next_batch or index == count - 1:
            await editor.channel.send_broadcast("files:snapshot", {"mode": "merge", "files": list(pending.values())})
            pending, next_batch = {}, time.monotonic() + 1 / BATCHES_PER_SECOND
        await asyncio.sleep(max(0.0, began + (index + 1) / TYPED_PER_SECOND - time.monotonic()))
    return typed


async def test_a_fast_typist_stays_inside_the_supabase_profile_and_loses_no_newest_version(
    supabase_endpoint: str, start_agent: StartAgent, tmp_path: Path
) -> None:
    project_id, key = f"proj-{uuid.uuid4().hex[:8]}", service_token()
    env = {"PROJECT_ID": project_id, "REALTIME_URL": supabase_endpoint, "REALTIME_KEY": key}
    agent = await asyncio.to_thread(start_agent, tmp_path / "project", **env)
    editor = await Editor.join(supabase_endpoint, key, project_id)
    try:
        await until(lambda: agent.health()["supabaseConnected"])
        typed = await type_and_send(editor, seconds=6.0)

        def newest_acked() -> bool:
            seen: dict[str, int] = {}
            for body in acks(editor.received):
                seen[body["path"]] = max(seen.get(body["path"], 0), body["version"])
            return all(seen.get(path) == version for path, (version, _) in typed.items())

        await until(newest_acked, timeout=20)
        state = editor.channel.state.value
    finally:
        await editor.leave()
    on_disk = {path: hashlib.sha256((agent.project_dir / path).read_bytes()).hexdigest() for path in typed}
    assert on_disk == {path: digest for path, (_, digest) in typed.items()}
    assert [e for e in editor.received if e[0] == "agent:error"] == []
    assert state == "joined"  # never shut by `Too many messages per second`
    assert agent.output().count('"realtime joined"') == 1  # the agent's channel was never shut either

"""File sync end to end: the agent subprocess and an editor on the official client, through the
orchestrator's realtime endpoint (fixture ``realtime_endpoint``, realtime_bridge/testing.py)."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from velocity.auth import AGENT_AUDIENCE, AGENT_MACHINE_CLAIM, issue_token

from .conftest import Recorder, Session, StartAgent
from .realtime_helpers import Editor, Relay, until, until_count
from .test_files import ATTACKS


def everything_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


async def test_it_writes_an_update_and_acknowledges_it_with_hash_and_latency(session: Session) -> None:
    await session.editor.edit("src/App.jsx", "export default 1\n", sent_at=1)
    ack = await session.editor.synced("src/App.jsx", 1)
    assert ack["sha256"] == hashlib.sha256(b"export default 1\n").hexdigest()
    assert isinstance(ack["latency_ms"], int)
    assert (session.agent.project_dir / "src/App.jsx").read_text() == "export default 1\n"


async def test_the_static_preview_shows_content_written_over_realtime(session: Session) -> None:
    await session.editor.edit("index.html", "<h1>edited live</h1>")
    await session.editor.synced("index.html", 1)
    assert (await asyncio.to_thread(session.agent.get, "/")).text == "<h1>edited live</h1>"


async def test_it_refuses_every_dangerous_path_and_writes_nothing_outside_the_project(session: Session) -> None:
    root = session.agent.project_dir.parent
    before = everything_under(root) - {p for p in everything_under(root) if p.startswith("agent-")}
    absolute = str(Path(tempfile.gettempdir()) / f"pwned-{uuid.uuid4().hex}")
    attacks = [path for path in ATTACKS if path] + ["escape/pwned.txt", absolute]
    for path in attacks:
        await session.editor.edit(path, "pwned", version=1)
    errors = await until_count(session.editor, "agent:error", len(attacks))
    assert {body["path"] for body in errors} == {path[:200] for path in attacks}
    after = {p for p in everything_under(root) if not p.startswith("agent-")}
    assert after == before
    assert (session.outside / "keep.txt").read_text() == "keep"
    assert not Path(absolute).exists()


async def test_it_refuses_a_file_over_the_size_limit(session: Session) -> None:
    await session.editor.edit("big.bin", "x" * 2049)
    _, error = await session.editor.wait_for(lambda e: e[0] == "agent:error")
    assert (error["code"], error["path"]) == ("too_large", "big.bin")
    assert not (session.agent.project_dir / "big.bin").exists()


async def test_it_ignores_an_update_older_than_the_version_on_disk(session: Session) -> None:
    await session.editor.edit("a.txt", "two", version=2)
    await session.editor.synced("a.txt", 2)
    await session.editor.edit("a.txt", "one", version=1)
    await session.editor.edit("fence.txt", "x", version=1)  # delivered in order: once it is acked, a.txt v1 was seen
    await session.editor.synced("fence.txt", 1)
    assert (session.agent.project_dir / "a.txt").read_text() == "two"
    assert not [
        e for e in session.editor.received if e[0] == "file:synced" and e[1]["version"] == 1 and e[1]["path"] == "a.txt"
    ]


async def test_it_deletes_a_file_and_acknowledges_the_delete(session: Session) -> None:
    await session.editor.edit("gone.txt", "bye")
    await session.editor.synced("gone.txt", 1)
    await session.editor.channel.send_broadcast("file:delete", {"path": "gone.txt", "version": 2})
    ack = await session.editor.synced("gone.txt", 2)
    assert ack["sha256"] is None
    assert not (session.agent.project_dir / "gone.txt").exists()


async def test_it_applies_a_snapshot_and_acknowledges_it_once(session: Session) -> None:
    files = [{"path": f"src/f{i}.js", "content": f"// {i}", "encoding": "utf-8", "version": 1} for i in range(20)]
    await session.editor.channel.send_broadcast("files:snapshot", {"files": files, "sent_at": 1})
    _, synced = await session.editor.wait_for(lambda e: e[0] == "files:synced")
    assert synced["count"] == 20
    assert (session.agent.project_dir / "src/f19.js").read_text() == "// 19"


async def test_no_edit_is_lost_across_a_forced_disconnect(session: Session) -> None:
    editor, agent = session.editor, session.agent
    await editor.edit("a.txt", "a1")
    await editor.synced("a.txt", 1)
    session.relay.cut()
    await until(lambda: not agent.health()["supabaseConnected"])
    await editor.edit("a.txt", "a2")  # both broadcast while the agent is away: lost in transit
    await editor.edit("b.txt", "b1")
    editor.received.clear()
    session.relay.restore()
    _, manifest = await editor.wait_for(lambda e: e[0] == "agent:manifest", timeout=30)
    assert manifest["files"]["a.txt"]["version"] == 1
    assert sorted(await editor.resend_missing(manifest["files"])) == ["a.txt", "b.txt"]
    await editor.synced("a.txt", 2)
    await editor.synced("b.txt", 1)
    assert (agent.project_dir / "a.txt").read_text() == "a2"
    assert (agent.project_dir / "b.txt").read_text() == "b1"


async def test_it_streams_dev_server_output_as_agent_log_events(
    realtime: tuple[str, Callable[[str], str]], start_agent: StartAgent
) -> None:
    base_url, project_key = realtime
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    env = {"PROJECT_ID": project_id, "REALTIME_URL": base_url, "REALTIME_KEY": project_key(project_id)}
    ticking = "while true; do echo tick; sleep 0.1; done"
    await asyncio.to_thread(start_agent, DEV_COMMAND=ticking, **env)
    editor = await Editor.join(base_url, project_key(project_id), project_id)
    try:
        _, log = await editor.wait_for(lambda e: e[0] == "agent:log" and e[1].get("line") == "tick", timeout=20)
        assert log["stream"] == "stdout"
    finally:
        await editor.leave()


async def test_a_burst_of_edits_is_acknowledged_without_tripping_the_servers_rate_limit(session: Session) -> None:
    """Two editors at 80 edits a second each: the agent's paced acks never trip the server's limit."""
    second = await session.join_editor()

    async def burst(editor: Editor, name: str) -> None:
        for index in range(100):
            await editor.edit(f"{name}/{index}.txt", str(index))
            await asyncio.sleep(1 / 80)

    await asyncio.gather(burst(session.editor, "one"), burst(second, "two"))
    acks = await until_count(session.editor, "file:synced", 200, timeout=30)
    assert len({body["path"] for body in acks}) == 200
    assert any(name == "files:synced" for name, _ in session.editor.received)  # paced acks were merged
    assert session.agent.output().count('"realtime joined"') == 1  # never closed for rate and rejoined


async def test_a_warm_pool_agent_syncs_files_once_assigned(
    realtime: tuple[str, Callable[[str], str]], start_agent: StartAgent, orchestrator: Recorder
) -> None:
    base_url, project_key = realtime
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    assignment = {"project_id": project_id, "session_id": "sess-warm", "realtime_key": project_key(project_id)}
    # A warm key the endpoint refuses: the socket before the claim fails, and the agent connects once assigned.
    env = {"PROJECT_ID": "", "REALTIME_URL": base_url, "REALTIME_KEY": "refused", "ORCHESTRATOR_URL": orchestrator.url}
    agent = await asyncio.to_thread(start_agent, ASSIGNMENT_POLL_INTERVAL="0.1", **env)
    await until(lambda: '"warm realtime connection failed"' in agent.output())
    orchestrator.assignments.append((200, assignment))
    editor = await Editor.join(base_url, project_key(project_id), project_id)
    try:
        await until(lambda: agent.health()["supabaseConnected"])
        await editor.edit("src/main.js", "warm")
        await editor.synced("src/main.js", 1)
        assert (agent.project_dir / "src/main.js").read_text() == "warm"
    finally:
        await editor.leave()


def warm_key() -> str:
    """A key shaped as the orchestrator gives a warm machine: the agents' audience, a machine, no project."""
    machine = uuid.uuid4()
    return issue_token(sub=machine, audience=AGENT_AUDIENCE, extra={AGENT_MACHINE_CLAIM: str(machine)})


async def test_a_warm_agent_is_connected_before_its_claim_and_joins_on_that_socket(
    realtime: tuple[str, Callable[[str], str]], relay: Relay, start_agent: StartAgent, orchestrator: Recorder
) -> None:
    base_url, project_key = realtime
    relayed = base_url.replace(f":{urlsplit(base_url).port}", f":{relay.port}", 1)
    env = {"PROJECT_ID": "", "REALTIME_URL": relayed, "REALTIME_KEY": warm_key(), "ORCHESTRATOR_URL": orchestrator.url}
    agent = await asyncio.to_thread(start_agent, ASSIGNMENT_POLL_INTERVAL="0.1", **env)
    await until(lambda: relay.accepted == 1 and '"realtime connected; waiting for an assignment"' in agent.output())
    relay.cut()  # the endpoint goes away while the agent waits: it connects again
    relay.restore()
    await until(lambda: relay.accepted == 2 and agent.output().count('"realtime connected; waiting') == 2)
    assert not agent.health()["supabaseConnected"]  # connected, joined to nothing

    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    editor = await Editor.join(base_url, project_key(project_id), project_id)
    orchestrator.assignments.append(
        (200, {"project_id": project_id, "session_id": "s", "realtime_key": project_key(project_id)})
    )
    try:
        await until(lambda: agent.health()["supabaseConnected"])
        await editor.edit("index.html", "warm")
        await editor.synced("index.html", 1)
        assert relay.accepted == 2  # the join went over the socket opened before the claim
    finally:
        await editor.leave()

"""The editor's side of resync, end to end: the agent subprocess, editors on the official clients
(Python ``realtime``, and realtime-js for its REST fallback) and the realtime endpoint's REST broadcast."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtime_bridge.tests.clients import JsClient

from .conftest import Session
from .realtime_helpers import Editor, rest_broadcast


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(path: str, content: str, version: int = 1) -> dict[str, object]:
    return {"path": path, "content": content, "encoding": "utf-8", "version": version}


def answers(editor: Editor) -> list[dict[str, Any]]:
    """The manifests sent in answer to requests (the one sent when the agent joined may be there too)."""
    return [body for name, body in editor.received if name == "agent:manifest" and body["reason"] == "request"]


@pytest.fixture
async def js_editor(session: Session) -> AsyncIterator[JsClient]:
    client = await JsClient.start(session.base_url, session.key)
    yield client
    await client.close()


async def test_it_answers_a_manifest_request_and_echoes_its_id(session: Session) -> None:
    await session.editor.edit("a.txt", "a")
    await session.editor.synced("a.txt", 1)
    manifest = await session.editor.request_manifest("req-1")
    assert manifest["a.txt"] == {"sha256": sha("a"), "version": 1}
    assert manifest["index.html"]["version"] == 0  # found on disk at boot
    [answer] = answers(session.editor)
    assert (answer["reason"], answer["request_id"], answer["request_ids"]) == ("request", "req-1", ["req-1"])


async def test_every_part_of_a_big_manifest_echoes_the_request_id(session: Session) -> None:
    files = [entry(f"src/f{index}.js", str(index)) for index in range(1100)]
    await session.editor.channel.send_broadcast("files:snapshot", {"files": files})
    await session.editor.wait_for(lambda e: e[0] == "files:synced", timeout=20)
    manifest = await session.editor.request_manifest("big")
    parts = answers(session.editor)
    assert [(body["part"], body["parts"], body["request_id"]) for body in parts] == [(1, 2, "big"), (2, 2, "big")]
    assert len(manifest) == 1101 and parts[0]["file_count"] == 1101


async def test_a_burst_of_requests_is_answered_and_the_last_one_never_dropped(session: Session) -> None:
    for index in range(9):
        await session.editor.channel.send_broadcast("files:manifest_request", {"request_id": f"r{index}"})
    await session.editor.request_manifest("last")
    # Answers go out in order: once the one for "last" is here, every earlier one is too.
    assert {rid for body in answers(session.editor) for rid in body["request_ids"]} == {f"r{i}" for i in range(9)} | {
        "last"
    }


async def test_a_replace_snapshot_deletes_unnamed_files_but_keeps_tool_folders(session: Session) -> None:
    editor, project = session.editor, session.agent.project_dir
    for path in ("old.txt", "src/keep.js", "node_modules/pkg/patch.js"):
        await editor.edit(path, "x")
        await editor.synced(path, 1)
    (project / ".git").mkdir()
    (project / ".git/HEAD").write_text("ref: main")
    snapshot = {"mode": "replace", "files": [entry("src/keep.js", "x"), entry("new.txt", "n")]}
    await editor.channel.send_broadcast("files:snapshot", snapshot)
    _, synced = await editor.wait_for(lambda e: e[0] == "files:synced")
    deleted = {(body["path"], body["version"]) for body in synced["files"] if body["sha256"] is None}
    assert (synced["mode"], deleted) == ("replace", {("index.html", 0), ("old.txt", 1)})
    assert not (project / "old.txt").exists() and not (project / "index.html").exists()
    assert (project / "node_modules/pkg/patch.js").exists() and (project / ".git/HEAD").exists()
    assert (project / "new.txt").read_text() == "n" and (session.outside / "keep.txt").exists()
    assert (await editor.request_manifest("after"))["old.txt"] == {"sha256": None, "version": 1}


async def test_a_snapshot_carries_deletes_and_lists_them_in_its_acknowledgement(session: Session) -> None:
    editor, project = session.editor, session.agent.project_dir
    await editor.edit("a.txt", "a")
    await editor.synced("a.txt", 1)
    files = [{"path": "a.txt", "version": 2, "deleted": True}, entry("b.txt", "b")]
    await editor.channel.send_broadcast("files:snapshot", {"files": files})
    _, synced = await editor.wait_for(lambda e: e[0] == "files:synced")
    assert [(body["path"], body["version"], body["sha256"]) for body in synced["files"]] == [
        ("a.txt", 2, None),
        ("b.txt", 1, sha("b")),
    ]
    assert synced["mode"] == "merge"
    assert not (project / "a.txt").exists() and (project / "index.html").exists()


async def test_an_edit_realtime_js_sends_through_rest_is_applied_and_acknowledged(
    session: Session, js_editor: JsClient
) -> None:
    """realtime-js falls back to ``POST /api/broadcast`` when its channel cannot push (here: left)."""
    topic = f"project:{session.project_id}"
    assert (await js_editor.join(topic))["status"] == "SUBSCRIBED"
    await js_editor.call("leave", topic=topic)
    assert await js_editor.call("send", topic=topic, event="file:update", payload=entry("r.txt", "r")) == "ok"
    ack = await session.editor.synced("r.txt", 1)  # on the channel, for whoever is joined
    assert ack["sha256"] == sha("r")
    assert (session.agent.project_dir / "r.txt").read_text() == "r"


async def test_an_editor_that_rejoins_resends_only_what_the_agent_lacks(session: Session) -> None:
    editor, project = session.editor, session.agent.project_dir
    for path in ("a.txt", "d.txt"):
        await editor.edit(path, "v1")
        await editor.synced(path, 1)
    store = editor.files
    await editor.leave()  # the editor's socket drops; its edits now travel by REST or not at all
    for body in (editor.record("a.txt", "a2"), editor.record("b.txt", "b1")):
        assert await rest_broadcast(session.base_url, session.key, session.project_id, "file:update", body) == 202
    editor.record("c.txt", "c1")  # made offline, never sent
    editor.record("d.txt", None)  # deleted offline, never sent
    rejoined = await session.join_editor()
    rejoined.files = store
    # No wait for the REST edits: they were accepted (202) before the request was sent, so the agent saw them first.
    manifest = await rejoined.request_manifest("rejoin")
    assert (manifest["a.txt"]["version"], manifest["b.txt"]["version"]) == (2, 1)
    assert sorted(await rejoined.resend_missing(manifest)) == ["c.txt", "d.txt"]
    assert (await rejoined.synced("d.txt", 2))["sha256"] is None
    await rejoined.synced("c.txt", 1)
    assert await rejoined.resend_missing(await rejoined.request_manifest("again")) == []
    assert [(project / name).read_text() for name in ("a.txt", "b.txt", "c.txt")] == ["a2", "b1", "c1"]
    assert not (project / "d.txt").exists()


async def test_an_edit_sent_by_rest_while_the_editor_is_away_is_acknowledged_to_whoever_listens(
    session: Session,
) -> None:
    listener: Editor = await session.join_editor()  # another tab, say, that stayed connected
    await session.editor.leave()
    body = entry("away.txt", "away")
    assert await rest_broadcast(session.base_url, session.key, session.project_id, "file:update", body) == 202
    assert (await listener.synced("away.txt", 1))["sha256"] == sha("away")

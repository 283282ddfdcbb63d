"""docs/asyncapi.yaml against the code: the official AsyncAPI parser validates the document, and the
messages the agent and the orchestrator really send, and the editor messages the agent really accepts,
are checked against its payload schemas, so the document cannot drift from either side."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from preview_agent.files import FileStore
from preview_agent.messages import Outgoing, handle_event, manifest_events

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "asyncapi.yaml"
HARNESS = Path(__file__).parent / "asyncapi"
DOC: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
MESSAGES = {message["name"]: message for message in DOC["components"]["messages"].values()}
REGISTRY = Registry().with_resource("urn:asyncapi", Resource.from_contents(DOC, default_specification=DRAFT7))


def payload_errors(event: str, payload: Any) -> list[str]:
    """What is wrong with ``payload`` as the document's ``event`` (every message must be documented)."""
    assert event in MESSAGES, f"{event} is not in docs/asyncapi.yaml"
    reference = MESSAGES[event]["payload"]["$ref"]
    validator = Draft7Validator({"$ref": f"urn:asyncapi{reference}"}, registry=REGISTRY)
    return [f"{event}: {error.message}" for error in validator.iter_errors(payload)]


def assert_documented(outgoing: list[Outgoing]) -> None:
    assert outgoing
    assert [error for event, body in outgoing for error in payload_errors(event, body)] == []


def example(event: str) -> dict[str, Any]:
    return dict(MESSAGES[event]["examples"][0]["payload"])


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path, max_bytes=1 << 20)


def test_the_document_is_valid_asyncapi_3_for_the_official_parser() -> None:
    if not (HARNESS / "node_modules" / "@asyncapi" / "parser").is_dir():  # `make test` installs it first
        npm = ["npm", "ci", "--prefix", str(HARNESS), "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
        subprocess.run(npm, check=True, cwd=REPO)
    checked = subprocess.run(
        ["node", "validate.mjs", str(DOCUMENT)], cwd=HARNESS, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok: AsyncAPI 3.0.0")


def test_every_example_matches_its_own_schema() -> None:
    examples = [(name, e["payload"]) for name, m in MESSAGES.items() for e in m.get("examples", [])]
    assert len(examples) >= 8
    assert [error for name, payload in examples for error in payload_errors(name, payload)] == []


def test_the_agents_answers_to_edits_are_documented(store: FileStore) -> None:
    outgoing: list[Outgoing] = []
    for event in ("file:update", "file:delete", "files:snapshot"):
        outgoing += handle_event(store, event, example(event), now_ms=1767225600500).outgoing
    refused = {"path": "../etc/passwd", "content": "x", "version": 1}
    outgoing += handle_event(store, "file:update", refused).outgoing
    outgoing += handle_event(store, "files:snapshot", {"files": [refused, "junk"]}).outgoing
    outgoing += handle_event(store, "files:snapshot", {"files": "all of them"}).outgoing
    assert {event for event, _ in outgoing} == {"file:synced", "files:synced", "agent:error"}
    assert_documented(outgoing)


def test_the_agents_manifest_in_parts_is_documented(store: FileStore) -> None:
    for event in ("file:update", "file:delete"):  # a file and a tombstone
        handle_event(store, event, example(event))
    parts = manifest_events(store, reason="join", part_size=1)
    assert [body["part"] for _, body in parts] == [1, 2]
    assert_documented(parts)
    assert_documented(manifest_events(FileStore(store.root / "empty", max_bytes=1), reason="join"))


def test_the_manifest_answering_requests_is_documented(store: FileStore) -> None:
    handle_event(store, "file:update", example("file:update"))
    answer = manifest_events(store, reason="request", requests=["tab-1", "tab-2"])
    assert [(body["request_id"], body["request_ids"]) for _, body in answer] == [("tab-2", ["tab-1", "tab-2"])]
    assert_documented(answer)


def test_a_replace_snapshot_with_deletes_and_its_answer_are_documented(store: FileStore) -> None:
    handle_event(store, "file:update", {**example("file:update"), "path": "old.txt"})
    snapshot = {
        "mode": "replace",
        "files": [
            {"path": "index.html", "content": "<p>new</p>", "encoding": "utf-8", "version": 5},
            {"path": "gone.txt", "version": 2, "deleted": True},
        ],
    }
    assert_documented([("files:snapshot", snapshot)])
    outgoing = handle_event(store, "files:snapshot", snapshot).outgoing
    synced = [body for event, body in outgoing if event == "files:synced"]
    assert synced and synced[0]["mode"] == "replace"
    assert "old.txt" in {entry["path"] for entry in synced[0]["files"]}  # deleted by replace
    assert_documented(outgoing)


@pytest.mark.parametrize("event", ["file:update", "file:delete", "files:snapshot"])
def test_the_agent_accepts_each_editor_example_and_refuses_it_without_a_required_field(
    store: FileStore, event: str
) -> None:
    accepted = handle_event(store, event, example(event)).outgoing
    assert "agent:error" not in {name for name, _ in accepted}
    schema = DOC["components"]["schemas"][MESSAGES[event]["payload"]["$ref"].rsplit("/", 1)[1]]
    for field in example(event):
        without = {key: value for key, value in example(event).items() if key != field}
        answers = handle_event(store, event, without).outgoing
        refused = any(name == "agent:error" for name, _ in answers)
        assert refused == (field in schema.get("required", [])), f"{event} without {field}"


@pytest.mark.django_db
def test_the_orchestrators_session_status_is_documented() -> None:
    from sessions import changes
    from sessions.models import PreviewSession

    session = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="p")
    with mock.patch.object(changes.publish, "broadcast_on_commit", wraps=changes.publish.broadcast_on_commit) as spy:
        changes.session_status_announce(session)
    sent = spy.call_args.kwargs
    assert_documented([(sent["event"], sent["payload"])])

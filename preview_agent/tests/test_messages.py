import hashlib
import random
from pathlib import Path

import pytest

from preview_agent.files import FileStore
from preview_agent.messages import Result, handle_event, latency_ms, manifest_events, merge_acks
from preview_agent.sync import RealtimeSync

NOW = 1_800_000_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "project", max_bytes=64)


def update(path: str, content: str, version: int, **extra: object) -> dict[str, object]:
    return {
        "path": path,
        "content": content,
        "encoding": "utf-8",
        "version": version,
        "sent_at": NOW - 40,
        **extra,
    }


def test_it_acknowledges_a_write_with_hash_version_and_latency(store: FileStore) -> None:
    result = handle_event(store, "file:update", update("src/a.js", "hi", 1), NOW)
    sha = hashlib.sha256(b"hi").hexdigest()
    assert result.outgoing == [("file:synced", {"path": "src/a.js", "version": 1, "sha256": sha, "latency_ms": 40})]
    assert result.changed == ["src/a.js"]


def test_it_answers_a_refused_path_with_an_agent_error_and_no_ack(store: FileStore) -> None:
    result = handle_event(store, "file:update", update("../x", "hi", 1), NOW)
    [(name, body)] = result.outgoing
    assert name == "agent:error"
    assert (body["code"], body["path"], body["event"]) == ("parent_segment", "../x", "file:update")


def test_it_answers_oversize_content_with_too_large(store: FileStore) -> None:
    result = handle_event(store, "file:update", update("big.txt", "x" * 65, 1), NOW)
    assert result.outgoing[0][1]["code"] == "too_large"
    assert not (store.root / "big.txt").exists()


def test_it_sends_nothing_for_a_stale_version(store: FileStore) -> None:
    handle_event(store, "file:update", update("a.txt", "new", 2), NOW)
    result = handle_event(store, "file:update", update("a.txt", "old", 1), NOW)
    assert result.outgoing == []
    assert (store.root / "a.txt").read_text() == "new"


def test_it_acknowledges_a_delete_with_a_null_hash(store: FileStore) -> None:
    handle_event(store, "file:update", update("a.txt", "x", 1), NOW)
    result = handle_event(store, "file:delete", {"path": "a.txt", "version": 2}, NOW)
    assert result.outgoing == [("file:synced", {"path": "a.txt", "version": 2, "sha256": None, "latency_ms": None})]
    assert not (store.root / "a.txt").exists()


def test_it_applies_a_snapshot_and_acknowledges_it_once(store: FileStore) -> None:
    files = [update("a.txt", "a", 1), update("b/c.txt", "c", 1), update("/etc/x", "no", 1)]
    result = handle_event(store, "files:snapshot", {"files": files, "sent_at": NOW - 5}, NOW)
    names = [name for name, _ in result.outgoing]
    assert names == ["agent:error", "files:synced"]
    synced = result.outgoing[-1][1]
    assert (synced["count"], synced["latency_ms"]) == (2, 5)
    assert (store.root / "b/c.txt").read_text() == "c"


def test_it_refuses_a_missing_or_negative_version(store: FileStore) -> None:
    for version in (None, -1, True, "3"):
        result = handle_event(store, "file:update", update("a.txt", "x", version), NOW)  # type: ignore[arg-type]
        assert result.outgoing[0][1]["code"] == "invalid_version"


def test_it_ignores_events_that_belong_to_other_listeners(store: FileStore) -> None:
    assert handle_event(store, "session:status", {"status": "active"}, NOW).outgoing == []


def test_it_reads_sent_at_as_epoch_milliseconds_or_iso_8601() -> None:
    assert latency_ms(NOW - 12, NOW) == 12
    assert latency_ms("2027-01-15T08:00:00Z", 1_800_000_000_500.0) == 500
    assert latency_ms("yesterday", NOW) is None


def test_it_describes_the_files_it_has_in_the_manifest(store: FileStore) -> None:
    handle_event(store, "file:update", update("a.txt", "x", 3), NOW)
    [(name, body)] = manifest_events(store, reason="join")
    assert name == "agent:manifest"
    assert (body["part"], body["parts"], body["file_count"]) == (1, 1, 1)
    assert body["files"] == {"a.txt": {"sha256": hashlib.sha256(b"x").hexdigest(), "version": 3}}


def test_it_splits_a_large_manifest_into_parts(store: FileStore) -> None:
    for index in range(5):
        handle_event(store, "file:update", update(f"f{index}.txt", "x", 1), NOW)
    parts = [body for _, body in manifest_events(store, reason="join", part_size=2)]
    assert [(body["part"], body["parts"], len(body["files"])) for body in parts] == [(1, 3, 2), (2, 3, 2), (3, 3, 1)]


def test_an_empty_project_still_sends_one_manifest(store: FileStore) -> None:
    assert [body["files"] for _, body in manifest_events(store, reason="join")] == [{}]


def snapshot(files: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"files": files, "sent_at": NOW - 5, **extra}


def test_a_snapshot_merges_by_default_and_keeps_files_it_does_not_name(store: FileStore) -> None:
    handle_event(store, "file:update", update("old.txt", "x", 1), NOW)
    result = handle_event(store, "files:snapshot", snapshot([update("new.txt", "n", 1)]), NOW)
    assert result.outgoing[-1][1]["mode"] == "merge"
    assert (store.root / "old.txt").read_text() == "x"


def test_a_snapshot_in_replace_mode_deletes_what_it_does_not_name_but_not_tool_folders(store: FileStore) -> None:
    for path in ("old.txt", "src/keep.js", "node_modules/pkg/patch.js", "web/.git/hooks/x"):
        handle_event(store, "file:update", update(path, "x", 4), NOW)
    result = handle_event(store, "files:snapshot", snapshot([update("src/keep.js", "x", 4)], mode="replace"), NOW)
    [(name, body)] = result.outgoing
    assert (name, body["mode"], body["count"]) == ("files:synced", "replace", 2)
    assert body["files"][1] == {"path": "old.txt", "version": 4, "sha256": None, "latency_ms": 5}
    assert not (store.root / "old.txt").exists()
    assert (store.root / "node_modules/pkg/patch.js").exists() and (store.root / "web/.git/hooks/x").exists()
    assert result.changed == ["old.txt"]


def test_a_snapshot_carries_deletes_under_the_version_rules_of_file_delete(store: FileStore) -> None:
    handle_event(store, "file:update", update("a.txt", "x", 1), NOW)
    handle_event(store, "file:update", update("b.txt", "x", 5), NOW)
    deletes = [{"path": "a.txt", "version": 2, "deleted": True}, {"path": "b.txt", "version": 3, "deleted": True}]
    result = handle_event(store, "files:snapshot", snapshot(deletes), NOW)
    assert result.outgoing == [
        ("files:synced", {"mode": "merge", "files": [synced_delete("a.txt", 2)], "count": 1, "latency_ms": 5})
    ]
    assert not (store.root / "a.txt").exists() and (store.root / "b.txt").exists()  # b.txt v3 is stale


def synced_delete(path: str, version: int) -> dict[str, object]:
    return {"path": path, "version": version, "sha256": None, "latency_ms": 5}


def test_a_snapshot_with_an_unknown_mode_changes_nothing(store: FileStore) -> None:
    result = handle_event(store, "files:snapshot", snapshot([update("a.txt", "x", 1)], mode="wipe"), NOW)
    assert [(name, body["code"]) for name, body in result.outgoing] == [("agent:error", "invalid_snapshot")]
    assert not (store.root / "a.txt").exists()


def test_a_manifest_request_is_accepted_with_or_without_an_id_and_refused_with_a_bad_one(store: FileStore) -> None:
    assert handle_event(store, "files:manifest_request", {"request_id": "r1"}, NOW).manifest_requests == ["r1"]
    assert handle_event(store, "files:manifest_request", {}, NOW).manifest_requests == [None]
    for bad in (7, "x" * 201):
        refused = handle_event(store, "files:manifest_request", {"request_id": bad}, NOW)
        assert refused.manifest_requests == []
        assert refused.outgoing[0][1]["code"] == "invalid_request_id"


def test_every_part_of_an_answer_echoes_the_requests_it_answers(store: FileStore) -> None:
    for index in range(3):
        handle_event(store, "file:update", update(f"f{index}.txt", "x", 1), NOW)
    parts = [body for _, body in manifest_events(store, reason="request", requests=["a", None, "b"], part_size=2)]
    assert [(b["reason"], b["request_id"], b["request_ids"], b["parts"]) for b in parts] == [
        ("request", "b", ["a", "b"], 2)
    ] * 2


def test_a_lone_ack_stays_a_file_synced() -> None:
    ack = ("file:synced", {"path": "a.txt", "version": 3, "sha256": "x", "latency_ms": 4})
    assert merge_acks([ack]) == ack


def test_merged_acks_keep_the_newest_version_of_every_path_whatever_the_order() -> None:
    """Coalescing never loses the newest version: 2,000 acks of 20 paths, shuffled, some already merged."""
    rng = random.Random(17)
    acks: list[tuple[str, dict[str, object]]] = []
    for version in range(1, 101):
        for index in range(20):
            acks.append(("file:synced", {"path": f"f{index}", "version": version, "sha256": str(version)}))
    rng.shuffle(acks)
    batched = [merge_acks(acks[start : start + 37]) for start in range(0, len(acks), 37)]
    name, body = merge_acks(batched)
    assert (name, body["mode"]) == ("files:synced", "acks")
    assert body["count"] == 20
    assert {entry["path"]: entry["version"] for entry in body["files"]} == {f"f{i}": 100 for i in range(20)}


def test_the_agent_sends_other_events_in_order_and_its_waiting_acks_as_one() -> None:
    sync = RealtimeSync("ws://x", "key", "project:p", handle=lambda e, p: Result(), manifest=lambda **_: [])
    sync.publish("file:synced", {"path": "a", "version": 1})
    sync.publish("agent:error", {"code": "io_error"})
    sync.publish("file:synced", {"path": "a", "version": 2})
    sync.publish("file:synced", {"path": "b", "version": 1})
    name, body = sync._next()[0]
    assert name == "files:synced"
    assert {entry["path"]: entry["version"] for entry in body["files"]} == {"a": 2, "b": 1}
    assert sync._next() == [("agent:error", {"code": "io_error"})]
    assert sync._next() == []

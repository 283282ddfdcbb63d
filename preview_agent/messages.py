"""Incoming realtime events → file operations → outgoing events.

A pure function of (event, payload, now): the realtime wiring in ``sync.py`` stays thin and every
rule here is tested without a socket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .files import FileRefused, FileState, FileStore, check_version, decode_content

logger = logging.getLogger(__name__)

Outgoing = tuple[str, dict[str, Any]]
MAX_ECHOED_PATH = 200
SNAPSHOT_MAX_FILES = 5000
MANIFEST_PART_SIZE = 1000
MAX_REQUEST_ID_CHARS = 200
MAX_REQUEST_IDS = 100
SNAPSHOT_MODES = ("merge", "replace")


@dataclass
class Result:
    outgoing: list[Outgoing] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    # ``files:manifest_request``s accepted, by request_id (None: the request gave none). The answer is
    # the realtime wiring's to send: it paces them and folds a burst into one (sync.py).
    manifest_requests: list[str | None] = field(default_factory=list)


def handle_event(store: FileStore, event: str, payload: Mapping[str, Any], now_ms: float | None = None) -> Result:
    """Apply one broadcast from the editor; unknown events are ignored (the channel is shared)."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    result = Result()
    if event == "file:update":
        _apply_update(store, payload, now_ms, result)
    elif event == "file:delete":
        _apply(store, event, payload, now_ms, result, _delete)
    elif event == "files:snapshot":
        _apply_snapshot(store, payload, now_ms, result)
    elif event == "files:manifest_request":
        _accept_manifest_request(payload, result)
    return result


def manifest_events(
    store: FileStore,
    *,
    reason: str,
    requests: Sequence[str | None] = (),
    part_size: int = MANIFEST_PART_SIZE,
) -> list[Outgoing]:
    """The manifest, in parts of at most ``part_size`` paths (a big project's would pass the realtime
    server's payload limit, and an oversize broadcast is dropped without a word).

    ``requests`` are the request ids this answers, oldest first: every part echoes the last one as
    ``request_id`` and all of them in ``request_ids`` (several tabs may ask at once and share it).
    """
    items = list(store.manifest().items())
    chunks = [items[start : start + part_size] for start in range(0, len(items), part_size)] or [[]]
    answered = {
        "request_id": requests[-1] if requests else None,
        "request_ids": list(dict.fromkeys(rid for rid in requests if rid is not None))[-MAX_REQUEST_IDS:],
    }
    return [
        (
            "agent:manifest",
            {
                "reason": reason,
                **answered,
                "part": number,
                "parts": len(chunks),
                "files": dict(chunk),
                "file_count": store.file_count,
            },
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


def _accept_manifest_request(payload: Mapping[str, Any], result: Result) -> None:
    request_id = payload.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_CHARS):
        message = f"request_id must be a string of at most {MAX_REQUEST_ID_CHARS} characters"
        result.outgoing.append(error_event("files:manifest_request", {}, "invalid_request_id", message))
        return
    result.manifest_requests.append(request_id)


def _apply_update(store: FileStore, payload: Mapping[str, Any], now_ms: float, result: Result) -> None:
    _apply(store, "file:update", payload, now_ms, result, _update)


def _update(store: FileStore, payload: Mapping[str, Any]) -> tuple[str, FileState]:
    version = check_version(payload.get("version"))
    data = decode_content(payload.get("content"), payload.get("encoding"), store.max_bytes)
    return store.write(payload.get("path"), data, version)  # type: ignore[arg-type]


def _delete(store: FileStore, payload: Mapping[str, Any]) -> tuple[str, FileState]:
    version = check_version(payload.get("version"))
    return store.delete(payload.get("path"), version)  # type: ignore[arg-type]


Operation = Callable[[FileStore, Mapping[str, Any]], tuple[str, FileState]]


def _apply(
    store: FileStore, event: str, payload: Mapping[str, Any], now_ms: float, result: Result, operation: Operation
) -> None:
    path = payload.get("path")
    try:
        outcome, state = operation(store, payload)
    except FileRefused as refused:
        result.outgoing.append(error_event(event, payload, refused.code, refused.message))
        return
    except OSError as error:
        logger.warning("file operation failed", extra={"event": event, "errno": error.errno})
        result.outgoing.append(error_event(event, payload, "io_error", error.strerror or "I/O error"))
        return
    if outcome == "stale":
        logger.info("stale version ignored", extra={"event": event, "version": payload.get("version")})
        return
    if outcome in ("written", "deleted"):
        result.changed.append(str(path))
    result.outgoing.append(("file:synced", synced_payload(str(path), state, payload.get("sent_at"), now_ms)))


def _remove(store: FileStore, payload: Mapping[str, Any]) -> tuple[str, FileState]:
    return "deleted", store.remove(payload["path"])


def _apply_snapshot(store: FileStore, payload: Mapping[str, Any], now_ms: float, result: Result) -> None:
    """Many files at once, acknowledged by one ``files:synced`` (one event per file would trip the
    realtime server's per-tenant message rate on a large project).

    Entries with ``"deleted": true`` are deletes (the rules of ``file:delete``); in ``replace`` mode every
    tracked file the snapshot does not name, outside tool folders, is deleted at the version it has.
    """
    files, mode = payload.get("files"), payload.get("mode")
    mode = "merge" if mode is None else mode
    if not isinstance(files, list) or len(files) > SNAPSHOT_MAX_FILES or mode not in SNAPSHOT_MODES:
        message = f"files must be a list of at most {SNAPSHOT_MAX_FILES} entries; mode 'merge' or 'replace'"
        result.outgoing.append(error_event("files:snapshot", payload, "invalid_snapshot", message))
        return
    each, sent_at = Result(), payload.get("sent_at")
    for entry in files:
        if not isinstance(entry, Mapping):
            each.outgoing.append(error_event("files:snapshot", {}, "invalid_snapshot", "entry must be an object"))
        elif entry.get("deleted") is True:
            _apply(store, "file:delete", {"sent_at": sent_at, **entry}, now_ms, each, _delete)
        else:
            _apply_update(store, {"sent_at": sent_at, **entry}, now_ms, each)
    if mode == "replace":
        named = {entry["path"] for entry in files if isinstance(entry, Mapping) and isinstance(entry.get("path"), str)}
        for path in store.unlisted(named):
            body = {"path": path, "version": store.entries[path].version, "sent_at": sent_at}
            _apply(store, "file:delete", body, now_ms, each, _remove)
    synced = [body for name, body in each.outgoing if name == "file:synced"]
    result.outgoing.extend(item for item in each.outgoing if item[0] != "file:synced")
    result.changed.extend(each.changed)
    latency = latency_ms(sent_at, now_ms)
    body = {"mode": mode, "files": synced, "count": len(synced), "latency_ms": latency}
    result.outgoing.append(("files:synced", body))


def merge_acks(acks: Sequence[Outgoing]) -> Outgoing:
    """Acknowledgements waiting together as one: a lone ``file:synced`` stays itself; more become one
    ``files:synced`` (``mode: "acks"``, unlike a snapshot's) with the newest ack of each path (an older
    version of a path is superseded by the newer one it was written over, as the editor counts it)."""
    if len(acks) == 1:
        return acks[0]
    newest: dict[str, dict[str, Any]] = {}
    for name, body in acks:
        for entry in body.get("files", []) if name == "files:synced" else [body]:
            path, known = str(entry.get("path")), newest.get(str(entry.get("path")))
            if known is None or _version(entry) >= _version(known):
                newest[path] = entry
    files = list(newest.values())
    latencies = [entry["latency_ms"] for entry in files if isinstance(entry.get("latency_ms"), int)]
    return "files:synced", {
        "mode": "acks",
        "files": files,
        "count": len(files),
        "latency_ms": max(latencies) if latencies else None,
    }


def _version(entry: Mapping[str, Any]) -> int:
    version = entry.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else -1


def synced_payload(path: str, state: FileState, sent_at: object, now_ms: float) -> dict[str, Any]:
    return {
        "path": path,
        "version": state.version,
        "sha256": state.sha256,
        "latency_ms": latency_ms(sent_at, now_ms),
    }


def latency_ms(sent_at: object, now_ms: float) -> int | None:
    """``sent_at`` may be epoch milliseconds or an ISO-8601 timestamp; anything else gives None."""
    if isinstance(sent_at, bool):
        return None
    if isinstance(sent_at, int | float):
        sent_ms = float(sent_at)
    elif isinstance(sent_at, str):
        try:
            stamp = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        sent_ms = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp() * 1000
    else:
        return None
    return max(0, round(now_ms - sent_ms))


def error_event(event: str, payload: Mapping[str, Any], code: str, message: str) -> Outgoing:
    path = payload.get("path")
    echoed = path[:MAX_ECHOED_PATH] if isinstance(path, str) else None
    body = {
        "event": event,
        "code": code,
        "message": message,
        "path": echoed,
        "version": payload.get("version"),
    }
    return "agent:error", body

"""The one door for publishing live events: event shapes and `publish_on_commit`.

Imports no domain app. Services build an `Event` with one of the constructors below and call
`publish_on_commit(event)`; operator consumers receive them as `{"type": "ops.event", "event": ...}`
on the `ops` group and on the project's and session's groups.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime_bridge import metrics

logger = logging.getLogger(__name__)

OPS_GROUP = "ops"
PROJECT_TOPIC_PREFIX = "project:"
MIRRORED_PREFIX = PROJECT_TOPIC_PREFIX
PG_GROUP = "rt.pg"


def project_topic(project_id: str) -> str:
    """The realtime channel of one project (what the editor and the agent join)."""
    return f"{PROJECT_TOPIC_PREFIX}{project_id}"


def _now_iso() -> str:
    return datetime.now(tz=UTC).isoformat()


def project_group(project_id: str) -> str:
    """Group of one project's operator view (project ids are free-form, so hashed)."""
    digest = hashlib.sha1(str(project_id).encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"ops.project.{digest}"


def session_group(session_id: str) -> str:
    return f"ops.session.{session_id}"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    project_id: str | None = None
    session_id: str | None = None
    at: str = field(default_factory=_now_iso)

    def groups(self) -> list[str]:
        groups = [OPS_GROUP]
        if self.project_id:
            groups.append(project_group(self.project_id))
        if self.session_id:
            groups.append(session_group(self.session_id))
        return groups

    def message(self) -> dict[str, Any]:
        return {"type": "ops.event", "event": asdict(self)}


# --- shapes ------------------------------------------------------------------------------------


def session_status(
    *,
    session_id: str,
    project_id: str,
    status: str,
    preview_url: str | None = None,
    end_reason: str | None = None,
) -> Event:
    data = {"session_id": str(session_id), "status": status, "preview_url": preview_url}
    if end_reason:
        data["end_reason"] = end_reason
    return Event("session.status", data, project_id=str(project_id), session_id=str(session_id))


def machine_state(
    *,
    machine_id: str,
    state: str,
    source: str,
    session_id: str | None = None,
    project_id: str | None = None,
) -> Event:
    data = {"machine_id": str(machine_id), "state": state, "source": source}
    session = str(session_id) if session_id else None
    project = str(project_id) if project_id else None
    return Event("machine.state", data, project_id=project, session_id=session)


def realtime_message(*, project_id: str, event: str, data: dict[str, Any]) -> Event:
    """A broadcast seen on `project:{id}`, summarised (file contents are never forwarded)."""
    return Event("realtime.message", {"event": event, **data}, project_id=project_id)


def row_change(
    *,
    table: str,
    change_type: str,
    columns: list[dict[str, str]],
    record: dict[str, Any] | None = None,
    old_record: dict[str, Any] | None = None,
    schema: str = "public",
) -> dict[str, Any]:
    """A `postgres_changes` data map as Realtime sends it (section 7 of the reference)."""
    stamp = datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data: dict[str, Any] = {
        "schema": schema,
        "table": table,
        "commit_timestamp": stamp,
        "type": change_type,
        "columns": columns,
        "errors": None,
    }
    if record is not None:
        data["record"] = record
    if old_record is not None:
        data["old_record"] = old_record
    return data


# --- publishing ----------------------------------------------------------------------------


def publish_on_commit(event: Event, *, using: str | None = None) -> None:
    """Publish after the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(partial(publish, event), using=using)


def publish(event: Event) -> None:
    from realtime_bridge import relay

    if relay.needed():
        relay.post("event", {"event": asdict(event)})
        return
    try:
        async_to_sync(apublish)(event)
    except Exception:  # a live view must never break the write that caused it
        logger.exception("ops event publish failed", extra={"kind": event.kind})


async def apublish(event: Event) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = event.message()
    for group in event.groups():
        await layer.group_send(group, message)


def publish_row_change_on_commit(change: dict[str, Any], *, using: str | None = None) -> None:
    """Deliver a row change to `postgres_changes` subscribers after commit."""
    transaction.on_commit(partial(publish_row_change, change), using=using)


def publish_row_change(change: dict[str, Any]) -> None:
    from realtime_bridge import relay

    if relay.needed():
        relay.post("row_change", {"change": change})
        return
    try:
        async_to_sync(apublish_row_change)(change)
    except Exception:
        logger.exception("row change publish failed", extra={"table": change.get("table")})


async def apublish_row_change(change: dict[str, Any]) -> None:
    """Local endpoint sockets directly; other processes through the layer's `rt.pg` group."""
    from realtime_bridge.hub import existing_hub

    hub = existing_hub()
    if hub is not None:
        await hub.deliver_change(change)
    layer = get_channel_layer()
    if layer is not None and (hub is None or hub.remote):
        origin = hub.id if hub is not None else None
        await layer.group_send(PG_GROUP, {"type": "rt.pg", "change": change, "origin": origin})


def reauthorize_on_commit(*, topic: str, using: str | None = None) -> None:
    """After commit, every process re-checks every channel joined on ``topic`` (without ``realtime:``)
    and closes those whose token lost access (a member removed, a machine destroyed)."""
    transaction.on_commit(partial(reauthorize, topic), using=using)


def reauthorize(topic: str) -> None:
    from realtime_bridge import relay

    if relay.needed():
        relay.post("reauthorize", {"topic": topic})
        return
    try:
        async_to_sync(areauthorize)(topic)
    except Exception:
        logger.exception("reauthorize publish failed", extra={"topic": topic})


async def areauthorize(topic: str) -> None:
    """Local endpoint sockets directly; other processes through the layer's `rt.pg` group."""
    from realtime_bridge.hub import existing_hub

    hub = existing_hub()
    if hub is not None:
        await hub.reauthorize(topic)
    layer = get_channel_layer()
    if layer is not None and (hub is None or hub.remote):
        origin = hub.id if hub is not None else None
        await layer.group_send(PG_GROUP, {"type": "rt.reauth", "topic": topic, "origin": origin})


# --- broadcasts mirrored into the operator views -------------------------------------------


def _lag_ms(sent_at: Any) -> float | None:
    """Lag from a client `sent_at` (ISO-8601 or epoch milliseconds) to now."""
    try:
        if isinstance(sent_at, int | float):
            sent = float(sent_at) / 1000
        elif isinstance(sent_at, str):
            sent = datetime.fromisoformat(sent_at.replace("Z", "+00:00")).timestamp()
        else:
            return None
    except ValueError:
        return None
    return round((datetime.now(tz=UTC).timestamp() - sent) * 1000, 1)


def _summary(topic: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    raw = payload.get("payload")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    path, version = str(inner.get("path", "")), str(inner.get("version", ""))
    if event == "file:update":
        metrics.file_update_seen(topic, path, version)
        content = inner.get("content")
        size = len(content.encode("utf-8")) if isinstance(content, str) else None
        return {"path": path, "version": version, "size": size, "lag_ms": _lag_ms(inner.get("sent_at"))}
    if event == "file:synced":
        lag = metrics.file_synced_seen(topic, path, version)
        ack_ms = None if lag is None else round(lag * 1000, 1)
        keep = {k: inner.get(k) for k in ("path", "version", "sha256", "latency_ms")}
        return {**keep, "ack_lag_ms": ack_ms}
    if event in ("agent:log", "session:status", "file:delete"):
        return dict(inner)
    return {}


async def mirror_broadcast(topic: str, event: str, payload: dict[str, Any] | None, *, source: str = "endpoint") -> None:
    """Forward a broadcast on `project:{id}` to the operator views (others are ignored).

    `source` is `endpoint` (the embedded endpoint saw it) or `bridge` (mirrored from Supabase).
    """
    if not topic.startswith(MIRRORED_PREFIX):
        return
    summary = {**_summary(topic, event, payload or {}), "source": source}
    project_id = topic.removeprefix(MIRRORED_PREFIX)
    try:
        await apublish(realtime_message(project_id=project_id, event=event, data=summary))
    except Exception:
        logger.exception("ops mirror failed", extra={"event": event})

"""The one way to publish: operator events, `postgres_changes` rows, access changes and server broadcasts.

Services call the ``*_on_commit`` functions, so nothing is announced for a write that rolls back. Each
publication goes where it can be delivered from this process:

- the ASGI server process (or any process, with Redis): the channel layer and this process's hub directly;
- the embedded default's task cluster, whose in-memory layer reaches nobody: the server, over the relay
  (``realtime_bridge.relay``), which hands the item back to ``dispatch`` here;
- a server broadcast on a project's topic with a Supabase project configured: its REST broadcast API.

A bulk write (the expiry sweep) announces inside ``batched()``: its publications are collected and go out
together at the end (``dispatch_many``): one event loop, one channel-layer message per operator group,
groups nobody follows skipped, one relay request or one Supabase REST request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from realtime_bridge import listeners, metrics, mirror, observers, relay
from realtime_bridge.events import PG_GROUP, TOPIC_PREFIX, Event, realtime_message
from realtime_bridge.hub import existing_hub, get_hub, topic_group
from realtime_bridge.protocol import BroadcastFrames

logger = logging.getLogger(__name__)
_local = threading.local()


# --- operator events ---------------------------------------------------------------------------


def publish_on_commit(event: Event, *, using: str | None = None) -> None:
    """Publish after the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(partial(publish, event), using=using)


def publish(event: Event) -> None:
    """Hand ``event`` to the registered listeners (``realtime_bridge.listeners``), then to the operator views."""
    if _collect({"kind": "event", "event": event}):
        return
    listeners.notify(event)
    _deliver("event", {"event": asdict(event)}, partial(apublish, event))


def _deliver(kind: str, body: dict[str, Any], here: Callable[[], Awaitable[None]]) -> None:
    """Hand the publication to the server process over the relay, or run ``here`` in this one. A failure is
    logged, never raised: a live view must never break the write that caused it."""
    if relay.needed():
        relay.post(kind, body)
        return
    try:
        async_to_sync(here)()
    except Exception:
        logger.exception("publish failed", extra={"kind": kind})


async def apublish(event: Event) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = event.message()
    for group in event.groups():
        await layer.group_send(group, message)


# --- postgres_changes rows ---------------------------------------------------------------------


def publish_row_change_on_commit(change: dict[str, Any], *, using: str | None = None) -> None:
    """Deliver a row change to `postgres_changes` subscribers after commit."""
    transaction.on_commit(partial(publish_row_change, change), using=using)


def publish_row_change(change: dict[str, Any]) -> None:
    if _collect({"kind": "row_change", "change": change}):
        return
    _deliver("row_change", {"change": change}, partial(apublish_row_change, change))


async def apublish_row_change(change: dict[str, Any]) -> None:
    """Local endpoint sockets directly; other processes through the layer's `rt.pg` group."""
    hub = existing_hub()
    if hub is not None:
        await hub.deliver_change(change)
    await _to_other_processes(hub, {"type": "rt.pg", "change": change})


async def _to_other_processes(hub: Any, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None and (hub is None or hub.remote):
        await layer.group_send(PG_GROUP, {**message, "origin": hub.id if hub is not None else None})


# --- access changes ----------------------------------------------------------------------------


def reauthorize_on_commit(*, topic: str, using: str | None = None) -> None:
    """After commit, every process re-checks every channel joined on ``topic`` (without ``realtime:``)
    and closes those whose token lost access (a member removed, a machine destroyed)."""
    transaction.on_commit(partial(reauthorize, topic), using=using)


def reauthorize(topic: str) -> None:
    _deliver("reauthorize", {"topic": topic}, partial(areauthorize, topic))


async def areauthorize(topic: str) -> None:
    hub = existing_hub()
    if hub is not None:
        await hub.reauthorize(topic)
    await _to_other_processes(hub, {"type": "rt.reauth", "topic": topic})


# --- server broadcasts on a topic --------------------------------------------------------------


def broadcast_on_commit(*, topic: str, event: str, payload: dict[str, Any]) -> None:
    """Broadcast ``event`` on ``topic`` (e.g. ``project:abc``) after the transaction commits."""
    transaction.on_commit(partial(broadcast, topic=topic, event=event, payload=payload))


def broadcast(*, topic: str, event: str, payload: dict[str, Any]) -> None:
    # Project channels are private (the editor and the agent join them so); the service role may send.
    message = {"topic": topic, "event": event, "payload": payload, "private": True}
    if _collect({"kind": "broadcast", "message": message}):
        return
    if settings.SUPABASE_URL:
        _supabase_broadcast([message])
    elif relay.needed():
        relay.post("broadcast", {"message": message})
    else:
        async_to_sync(publish_message)(message)


def _supabase_broadcast(messages: list[dict[str, Any]]) -> None:
    """One REST request for these messages (its batch form takes many)."""
    key = settings.SUPABASE_SERVICE_ROLE_KEY
    try:
        httpx.post(
            f"{settings.SUPABASE_URL}/realtime/v1/api/broadcast",
            json={"messages": messages},
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
            timeout=5,
        ).raise_for_status()
    except httpx.HTTPError as exc:
        event = messages[0]["event"]
        logger.warning(
            "supabase broadcast failed", extra={"event": event, "count": len(messages), "error": type(exc).__name__}
        )


def json_frames(topic: str, message: dict[str, Any]) -> BroadcastFrames:
    """The fan-out frames of a REST-shaped message (`topic` without `realtime:`)."""
    payload = {"type": "broadcast", "event": message["event"], "payload": message["payload"]}
    if message.get("id"):
        payload["meta"] = {"id": str(message["id"])}
    return BroadcastFrames(TOPIC_PREFIX + topic, payload, None)


async def publish_frames(topic: str, private: bool, frames: BroadcastFrames) -> None:
    """Deliver already-authorized frames to every subscriber of ``topic`` and mirror them to operators."""
    await get_hub().broadcast(topic_group(TOPIC_PREFIX + topic, private=private), frames, sender=None)
    metrics.broadcast_seen(frames.event, frames.size())
    await mirror_broadcast(topic, frames.event, frames.json_payload)


async def publish_message(message: dict[str, Any]) -> None:
    """A server-side broadcast (already authorized): one REST-shaped message to every subscriber."""
    await publish_frames(message["topic"], bool(message.get("private")), json_frames(message["topic"], message))


# --- relayed items (the server side of the relay) ----------------------------------------------


async def dispatch(body: dict[str, Any]) -> None:
    """Publish one item another process relayed to the server (see ``relay.post``)."""
    kind = body["kind"]
    if kind == "batch":
        await dispatch_many(body["items"])
    elif kind == "event":
        await apublish(Event(**body["event"]))
    elif kind == "row_change":
        await apublish_row_change(body["change"])
    elif kind == "broadcast":
        await publish_message(body["message"])
    elif kind == "reauthorize":
        await areauthorize(str(body["topic"]))


# --- broadcasts mirrored into the operator views -----------------------------------------------


async def mirror_broadcast(topic: str, event: str, payload: dict[str, Any] | None, *, source: str = "endpoint") -> None:
    """Forward a broadcast on `project:{id}` to the operator views and the registered observers (others are
    ignored; see ``realtime_bridge.observers``).

    `source` is `endpoint` (the embedded endpoint saw it) or `bridge` (mirrored from Supabase).
    """
    mirrored = _observe(topic, event, payload, source)
    if mirrored is not None:
        await _apublish_mirror(mirrored)


def mirror_broadcast_soon(topic: str, event: str, payload: dict[str, Any] | None) -> None:
    """``mirror_broadcast`` for a socket's broadcast: observers now, the operator views from the loop's mirror
    task (``realtime_bridge.mirror``), so the sender's next frame does not wait for the channel layer."""
    mirrored = _observe(topic, event, payload, "endpoint")
    if mirrored is not None:
        mirror.send_soon(mirrored, _apublish_mirror)


def _observe(topic: str, event: str, payload: dict[str, Any] | None, source: str) -> Event | None:
    """Tell the observers; the operator event to publish, or None for a topic that is not a project's."""
    summary = metrics.mirror_summary(topic, event, payload or {})
    if summary is None:
        return None
    project_id = topic.split(":", 1)[1]
    inner = (payload or {}).get("payload")
    observers.notify(
        observers.Observed(
            project_id=project_id,
            event=event,
            summary=summary,
            payload=inner if isinstance(inner, dict) else {},
            source=source,
            at=datetime.now(tz=UTC),
        )
    )
    return realtime_message(project_id=project_id, event=event, data={**summary, "source": source})


# --- bulk announcements ------------------------------------------------------------------------


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Within this block (in this thread), publications are collected and published together at its end.

    Wrap the transaction whose ``*_on_commit`` announcements should go out together: its hooks run as it
    commits, still inside the block. The listeners hear the collected events at the end, in one call each
    (``listeners.notify_many``); then everything is published at once (``dispatch_many``), over one relay
    request in the embedded mode's task cluster. Nesting keeps the outer block's batch.
    """
    if getattr(_local, "batch", None) is not None:
        yield
        return
    _local.batch = []
    try:
        yield
    finally:
        items, _local.batch = _local.batch, None
        if items:
            _publish_collected(items)


def _collect(item: dict[str, Any]) -> bool:
    batch = getattr(_local, "batch", None)
    if batch is None:
        return False
    batch.append(item)
    return True


def _publish_collected(items: list[dict[str, Any]]) -> None:
    listeners.notify_many([item["event"] for item in items if item["kind"] == "event"])
    if settings.SUPABASE_URL:
        messages = [item["message"] for item in items if item["kind"] == "broadcast"]
        if messages:
            _supabase_broadcast(messages)
        items = [item for item in items if item["kind"] != "broadcast"]
    if not items:
        return
    if relay.needed():
        relay.post("batch", {"items": [_wire_item(item) for item in items]})
        return
    try:
        async_to_sync(dispatch_many)(items)
    except Exception:
        logger.exception("publish failed", extra={"kind": "batch", "count": len(items)})


def _wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the relay carries it (JSON)."""
    if item["kind"] == "event":
        return {"kind": "event", "event": asdict(item["event"])}
    return item


def _event(raw: Event | dict[str, Any]) -> Event:
    return raw if isinstance(raw, Event) else Event(**raw)


async def dispatch_many(items: list[dict[str, Any]]) -> None:
    """Publish many items (``dispatch``'s forms, events also as ``Event``) with few channel-layer messages.

    Each group gets one message for all its operator events (``ops.events``, a list); groups nobody follows
    now are skipped (``_followed``); row changes and broadcasts reach local sockets as ``dispatch`` delivers
    them, and other processes with one layer message each (the hub's cross-process forms).
    """
    sends, broadcasts, hub = _Sends(), [], existing_hub()
    for item in items:
        kind = item["kind"]
        if kind == "event":
            sends.event(_event(item["event"]))
        elif kind == "row_change":
            await _row_change_here(hub, item["change"], sends)
        elif kind == "broadcast":
            broadcasts.append(item["message"])
        else:
            await dispatch(item)
    planned = [_planned_broadcast(message, sends) for message in broadcasts]
    followed = await _followed(get_channel_layer(), sends.groups() | {group for group, _ in planned})
    await sends.flush(followed)
    await _broadcast_planned(planned, followed)


async def _row_change_here(hub: Any, change: dict[str, Any], sends: _Sends) -> None:
    if hub is not None:
        try:
            await hub.deliver_change(change)
        except Exception:
            logger.exception("publish failed", extra={"kind": "row_change"})
    if hub is None or hub.remote:
        sends.add(PG_GROUP, {"type": "rt.pg", "change": change, "origin": hub.id if hub is not None else None})


def _planned_broadcast(message: dict[str, Any], sends: _Sends) -> tuple[str, BroadcastFrames]:
    """A broadcast's group and frames; its mirror goes to the observers now and to the operators with ``sends``."""
    topic = message["topic"]
    frames = json_frames(topic, message)
    mirrored = _observe(topic, frames.event, frames.json_payload, "endpoint")
    if mirrored is not None:
        sends.event(mirrored)
    return topic_group(TOPIC_PREFIX + topic, private=bool(message.get("private"))), frames


async def _broadcast_planned(planned: list[tuple[str, BroadcastFrames]], followed: set[str]) -> None:
    if not planned:
        return
    hub = get_hub()
    for group, frames in planned:
        try:
            if hub.remote and group not in followed:
                await hub.deliver(group, frames, sender=None)  # no other process follows it: this one's sockets only
            else:
                await hub.broadcast(group, frames, sender=None)
        except Exception:
            logger.exception("publish failed", extra={"kind": "broadcast", "event": frames.event})
        metrics.broadcast_seen(frames.event, frames.size())


class _Sends:
    """Channel-layer messages by group, in order; a group's operator events become one ``ops.events``."""

    def __init__(self) -> None:
        self.by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, group: str, message: dict[str, Any]) -> None:
        self.by_group[group].append(message)

    def event(self, event: Event) -> None:
        message = event.message()
        for group in event.groups():
            self.add(group, message)

    def groups(self) -> set[str]:
        return set(self.by_group)

    async def flush(self, followed: set[str]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for group, messages in self.by_group.items():
            if group not in followed:
                continue
            for message in _collapsed(messages):
                try:
                    await layer.group_send(group, message)
                except Exception:
                    logger.exception("publish failed", extra={"kind": message["type"], "group": group})


def _collapsed(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(messages) > 1 and all(m["type"] == "ops.event" for m in messages):
        return [{"type": "ops.events", "events": [m["event"] for m in messages]}]
    return messages


async def _followed(layer: Any, groups: set[str]) -> set[str]:
    """Those of ``groups`` that have a member now. With channels_redis, one pipelined ZCOUNT per shard over its
    group keys, counting members younger than its ``group_expiry`` as its ``group_send`` does; with any other
    layer (or when that fails), all of them. A member that joins between this and the send misses the item, as
    it would a moment earlier."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None or not hasattr(layer, "consistent_hash") or not groups:
        return set(groups)
    shards: dict[int, list[str]] = defaultdict(list)
    for group in groups:
        shards[layer.consistent_hash(group)].append(group)
    since = f"({int(time.time()) - layer.group_expiry}"
    followed: set[str] = set()
    try:
        for index, names in shards.items():
            pipe = layer.connection(index).pipeline(transaction=False)
            for name in names:
                pipe.zcount(group_key(name), since, "+inf")
            counts = await pipe.execute()
            followed.update(name for name, count in zip(names, counts, strict=True) if count)
    except Exception:
        logger.exception("channel layer group count failed")
        return set(groups)
    return followed


async def _apublish_mirror(event: Event) -> None:
    try:
        await apublish(event)
    except Exception:
        logger.exception("ops mirror failed", extra={"event": event.data.get("event")})

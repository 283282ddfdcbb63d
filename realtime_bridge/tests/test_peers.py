"""Broadcasts between processes over Redis pub/sub (`realtime_bridge/peers.py`): two real hubs, one real Redis.

Each hub stands for one web process (its own id, pub/sub connection and channel-layer channel); they share
this test's event loop. Group names are unique per test, since other hubs of the deployment may be listening.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings

from realtime_bridge.hub import Hub
from realtime_bridge.protocol import VSN_1, VSN_2, BinaryBroadcast, BroadcastFrames
from realtime_bridge.tests.test_fanout import FakeConn, RecordingWriter, _body
from velocity.testing import async_wait_until, require

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOAD = {"type": "broadcast", "event": "file:update", "payload": {"path": "a.ts"}}

MakeHub = Callable[[], Awaitable[Hub]]


@pytest.fixture
async def started_hub() -> AsyncIterator[MakeHub]:
    require(os.environ.get("REDIS_URL") and settings.REDIS_URL, "the pub/sub path needs Redis (REDIS_URL)")
    hubs: list[Hub] = []

    async def make() -> Hub:
        hub = Hub()
        assert hub.peers is not None
        await hub.start()
        hubs.append(hub)
        await async_wait_until(lambda: hub.peers is not None and hub.peers.ready, what="the hub's hello answered")
        return hub

    yield make
    for hub in hubs:
        await stop(hub)


async def stop(hub: Hub) -> None:
    """What a process that exits does to its tasks: the pub/sub connection closes with them."""
    tasks = list(hub._tasks)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def a_group() -> str:
    return f"rt.pub.test-{uuid.uuid4().hex}"


class State(SimpleNamespace):
    """The parts of a ChannelState the hub reads (a subclass, so row changes can key it weakly)."""


async def join(hub: Hub, group: str, conn: FakeConn) -> Any:
    state = State(group=group, key=conn.id, conn=conn, self_broadcast=False, topic="realtime:t")
    await hub.subscribe(state)  # type: ignore[arg-type]
    return state


def frames() -> BroadcastFrames:
    return BroadcastFrames("realtime:t", PAYLOAD, None)


def followers(hub: Hub) -> dict[str, set[str]]:
    """Which other hubs ``hub`` knows to follow each group."""
    assert hub.peers is not None
    return hub.peers.followers


def published(hub: Hub) -> int:
    assert hub.peers is not None
    return hub.peers.published


async def test_a_broadcast_reaches_a_socket_of_another_process(started_hub: MakeHub) -> None:
    sender, receiver = await started_hub(), await started_hub()
    group, conn = a_group(), FakeConn(VSN_1, RecordingWriter())
    await join(receiver, group, conn)
    await sender.broadcast(group, frames(), sender=None)
    await async_wait_until(lambda: conn.writer is not None and conn.writer.written, what="the remote delivery")
    assert conn.writer is not None and b'"path":"a.ts"' in _body(conn.writer.written[0])
    assert published(sender) == 1


async def test_a_binary_broadcast_keeps_its_kind_and_metadata_across_processes(started_hub: MakeHub) -> None:
    sender, receiver = await started_hub(), await started_hub()
    group, conn = a_group(), FakeConn(VSN_2, RecordingWriter())
    await join(receiver, group, conn)
    body = BinaryBroadcast("blob", b"\x00\x01", 0, {"id": "m1"})
    sent = BroadcastFrames("realtime:t", None, body)
    await sender.broadcast(group, sent, sender=None)
    await async_wait_until(lambda: conn.writer is not None and conn.writer.written, what="the remote delivery")
    assert conn.writer is not None and conn.writer.written[0] == sent.wire_for_vsn(VSN_2)


async def test_a_group_no_other_process_follows_costs_no_remote_send(started_hub: MakeHub) -> None:
    sender, other = await started_hub(), await started_hub()
    group, local = a_group(), FakeConn(VSN_1, RecordingWriter())

    await join(sender, group, local)
    await join(other, a_group(), FakeConn(VSN_1, RecordingWriter()))  # follows something else
    assert await sender.broadcast(group, frames(), sender=None) == 1
    assert published(sender) == 0
    assert group not in followers(sender)


async def test_once_a_join_returns_the_other_processes_know_and_send_to_it(started_hub: MakeHub) -> None:
    sender, receiver = await started_hub(), await started_hub()
    group = a_group()
    await sender.broadcast(group, frames(), sender=None)
    assert published(sender) == 0
    await join(receiver, group, FakeConn(VSN_1, RecordingWriter()))
    # No wait here: the join's follow was acknowledged by every hub before subscribe returned.
    await sender.broadcast(group, frames(), sender=None)
    assert published(sender) == 1


async def test_after_its_last_subscriber_leaves_a_process_gets_no_more_broadcasts(started_hub: MakeHub) -> None:
    sender, receiver = await started_hub(), await started_hub()
    group = a_group()
    state = await join(receiver, group, FakeConn(VSN_1, RecordingWriter()))
    await receiver.unsubscribe(state)
    await async_wait_until(lambda: group not in followers(sender), what="the unfollow heard")
    await sender.broadcast(group, frames(), sender=None)
    assert published(sender) == 0


async def test_a_process_that_went_away_is_forgotten_at_the_first_send_that_reaches_nobody(
    started_hub: MakeHub,
) -> None:
    sender, gone = await started_hub(), await started_hub()
    group = a_group()
    await join(gone, group, FakeConn(VSN_1, RecordingWriter()))
    await stop(gone)
    assert gone.id in followers(sender)[group]
    await sender.broadcast(group, frames(), sender=None)
    await async_wait_until(lambda: group not in followers(sender), what="the silent process forgotten")


async def test_a_process_that_starts_later_learns_who_follows_what(started_hub: MakeHub) -> None:
    early = await started_hub()
    group, conn = a_group(), FakeConn(VSN_1, RecordingWriter())
    await join(early, group, conn)
    late = await started_hub()
    assert early.id in followers(late)[group]
    await late.broadcast(group, frames(), sender=None)
    await async_wait_until(lambda: conn.writer is not None and conn.writer.written, what="the remote delivery")

"""The operator mirror's per-loop task (`realtime_bridge/mirror.py`)."""

from __future__ import annotations

import asyncio

import pytest

from realtime_bridge import mirror
from realtime_bridge.events import Event, realtime_message
from velocity.testing import async_wait_until


def an_event(n: int) -> Event:
    return realtime_message(project_id="p1", event="file:update", data={"n": n})


async def test_mirrored_events_are_sent_in_order_after_the_caller_returns() -> None:
    sent: list[int] = []

    async def send(event: Event) -> None:
        await asyncio.sleep(0)  # a channel-layer send yields to the loop
        sent.append(event.data["n"])

    for n in range(5):
        mirror.send_soon(an_event(n), send)
    assert sent == []
    await async_wait_until(lambda: len(sent) == 5, what="the mirror task")
    assert sent == [0, 1, 2, 3, 4]


async def test_past_the_waiting_limit_new_events_are_dropped_not_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror, "MAX_WAITING", 3)
    release, sent = asyncio.Event(), []

    async def stuck(event: Event) -> None:  # Redis not answering
        await release.wait()
        sent.append(event.data["n"])

    queue = mirror.MirrorQueue(stuck)
    for n in range(6):
        queue.put(an_event(n))
    assert len(queue.waiting) == 3 and queue.dropped == 3
    release.set()
    await async_wait_until(lambda: len(sent) == 3, what="the waiting events sent")
    assert sent == [0, 1, 2]

"""Observers hear each project broadcast the endpoint mirrors; a failing one harms neither delivery nor the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from realtime_bridge import observers
from realtime_bridge.publish import mirror_broadcast


@pytest.fixture
def heard() -> Iterator[list[observers.Observed]]:
    seen: list[observers.Observed] = []

    def failing(observed: observers.Observed) -> None:
        raise RuntimeError("an observer's bug")

    observers.register(failing)
    observers.register(seen.append)
    yield seen
    observers.unregister(failing)
    observers.unregister(seen.append)


async def test_a_project_broadcast_reaches_the_observers_with_its_payload(heard):
    frame = {"event": "file:update", "payload": {"path": "a.ts", "content": "x", "version": 2}}
    await mirror_broadcast("project:p1", "file:update", frame, source="bridge")
    [observed] = [o for o in heard if o.project_id == "p1"]
    assert (observed.event, observed.source, observed.payload["version"]) == ("file:update", "bridge", 2)
    assert observed.summary["path"] == "a.ts"
    assert observed.at.tzinfo is not None


async def test_broadcasts_on_other_topics_are_not_observed(heard):
    await mirror_broadcast("lobby", "file:update", {"payload": {"path": "a.ts"}})
    assert heard == []


def test_registering_twice_keeps_one():
    def observer(observed: observers.Observed) -> None:
        return None

    observers.register(observer)
    observers.register(observer)
    try:
        assert observers._observers.count(observer) == 1
    finally:
        observers.unregister(observer)

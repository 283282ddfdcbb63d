"""Listeners hear every operator event once, after its commit, in the process that wrote it (the server side of
the relay does not hear a relayed one again); a failing one harms neither the others nor the publication."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest

from realtime_bridge import events, listeners, publish


@pytest.fixture
def heard() -> Iterator[list[events.Event]]:
    seen: list[events.Event] = []

    def failing(event: events.Event) -> None:
        raise RuntimeError("a listener's bug")

    listeners.register(failing)
    listeners.register(seen.append)
    listeners.register(seen.append)  # twice: heard once
    yield seen
    listeners.unregister(failing)
    listeners.unregister(seen.append)


@pytest.mark.django_db
def test_an_event_is_heard_after_commit_only(
    heard: list[events.Event], django_capture_on_commit_callbacks: Any
) -> None:
    event = events.Event("session.budget", {"level": 80})
    with django_capture_on_commit_callbacks(execute=False) as pending:
        publish.publish_on_commit(event)
    assert heard == []
    for callback in pending:
        callback()
    assert heard == [event]


async def test_the_server_side_of_the_relay_does_not_hear_it_again(heard: list[events.Event]) -> None:
    """A publication relayed from a task process was heard there already: ``dispatch`` only delivers it."""
    event = events.machine_orphan_destroyed(
        provider_machine_id="fly-1", reason="unknown", hourly_cost_usd="0.01", cost_so_far_usd="0.02"
    )
    await publish.dispatch({"kind": "event", "event": asdict(event)})
    assert heard == []


def test_a_listener_with_a_many_form_hears_a_bulk_write_in_one_call() -> None:
    one_by_one: list[events.Event] = []
    calls: list[list[events.Event]] = []

    def single(event: events.Event) -> None:
        raise AssertionError("the many form hears the bulk write")

    listeners.register(one_by_one.append)
    listeners.register(single, many=calls.append)
    try:
        batch = [events.Event("session.status", {"n": n}) for n in range(3)]
        listeners.notify_many(batch)
    finally:
        listeners.unregister(one_by_one.append)
        listeners.unregister(single)
    assert calls == [batch]
    assert one_by_one == batch

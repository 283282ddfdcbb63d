"""Per-channel expiry timers (realtime_bridge/expiry.py): armed for the token's remaining life, re-armed, cancelled."""

from __future__ import annotations

import asyncio

from realtime_bridge.expiry import ExpiryTimers, delay


def test_the_delay_is_the_tokens_remaining_life_and_never_negative():
    assert delay(1000, 940.5) == 59.5
    assert delay(1000, 1005.0) == 0.0


async def test_a_timer_is_armed_for_the_expiry_moment_and_rearming_replaces_it():
    timers, loop = ExpiryTimers(), asyncio.get_running_loop()

    async def expire() -> None:
        raise AssertionError("not due")

    first = timers.arm("c", 1300, expire, now=1000.0)
    remaining = first.when() - loop.time()
    assert 299 < remaining <= 300
    second = timers.arm("c", 1600, expire, now=1000.0)
    assert first.cancelled() and not second.cancelled()
    assert timers.armed("c") is second
    timers.cancel_all()
    assert second.cancelled() and timers.armed("c") is None


async def test_a_due_timer_runs_its_expiry_once():
    timers, fired = ExpiryTimers(), asyncio.Event()

    async def expire() -> None:
        fired.set()

    timers.arm("c", 1000, expire, now=1000.0)
    await asyncio.wait_for(fired.wait(), 5)
    assert timers.armed("c") is None

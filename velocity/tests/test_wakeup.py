"""``velocity.wakeup``: a held request learns of another thread's commit at once, and never waits past its deadline."""

import os
import threading
import uuid

from velocity import wakeup
from velocity.testing import require, wait_until


def test_a_wake_up_answers_the_waiting_thread_with_what_it_now_finds() -> None:
    key = f"test:{uuid.uuid4()}"
    found: list[str] = []
    answers: list[str | None] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            wakeup.wait_for(lambda: found[0] if found else None, key=key, timeout=60, recheck=60)
        )
    )
    waiter.start()
    wait_until(lambda: key in wakeup._waiters, what="the waiter registered")
    found.append("assignment")
    assert wakeup.wake(key) == 1
    waiter.join(timeout=60)
    assert answers == ["assignment"]
    assert wakeup.wake(key) == 0  # it unregistered: nobody is left to wake


def test_without_a_wake_up_the_recheck_finds_it_and_past_the_deadline_the_answer_is_none() -> None:
    calls = []

    def check() -> str | None:
        calls.append(1)
        return "late" if len(calls) >= 3 else None

    assert wakeup.wait_for(check, key="test:lost", timeout=60, recheck=0.001) == "late"
    assert wakeup.wait_for(lambda: None, key="test:never", timeout=0, recheck=1) is None
    assert "test:lost" not in wakeup._waiters and "test:never" not in wakeup._waiters


def test_with_redis_a_wake_up_published_by_another_process_reaches_the_waiter() -> None:
    require(os.environ.get("REDIS_URL"), "several web processes share wake-ups through Redis")
    import redis

    key, found = f"test:{uuid.uuid4()}", ["claimed"]
    checks: list[int] = []

    def check() -> str | None:
        checks.append(1)
        return found[0] if len(checks) > 1 else None  # the first look finds nothing; any later one finds it

    answers: list[str | None] = []
    waiter = threading.Thread(target=lambda: answers.append(wakeup.wait_for(check, key=key, timeout=60, recheck=60)))
    waiter.start()
    other_process = redis.Redis.from_url(os.environ["REDIS_URL"])
    wait_until(lambda: other_process.publish(wakeup.CHANNEL, key) or answers, what="the listener woke the waiter")
    waiter.join(timeout=60)
    assert answers == ["claimed"]
    assert len(checks) == 2  # woken once, not by its 60 s recheck

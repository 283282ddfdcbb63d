from machines.providers.pacing import ActionPacer, Limit
from machines.testing.fly_fake import FakeClock


def _pacer(clock: FakeClock) -> ActionPacer:
    return ActionPacer(default=Limit(rate=1.0, burst=3), limits={"get": Limit(5.0, 10)}, clock=clock, sleep=clock.sleep)


def test_it_allows_a_burst_then_one_per_second() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    waits = [pacer.acquire("stop", "m1") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert clock.now == 2.0


def test_tokens_come_back_while_idle_up_to_the_burst() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    for _ in range(3):
        pacer.acquire("stop", "m1")
    clock.sleep(60)
    assert [pacer.acquire("stop", "m1") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_each_action_has_its_own_limit_and_bucket() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    assert [pacer.acquire("get", "m1") for _ in range(11)][-2:] == [0.0, 0.2]
    assert pacer.acquire("stop", "m1") == 0.0
    assert pacer.acquire("stop", "m2") == 0.0


def test_it_forgets_buckets_that_have_refilled() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    for i in range(1023):
        pacer.acquire("stop", f"m{i}")
    clock.sleep(10)
    pacer.acquire("stop", "fresh")
    assert pacer.tracked == 1

from preview_agent.ratelimit import TokenBucket


def test_try_take_lets_a_burst_through_then_refuses_until_tokens_come_back() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert [bucket.try_take() for _ in range(2)] == [True, False]


def test_reserve_lets_a_burst_through_then_spaces_uses_at_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=4, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert [bucket.reserve() for _ in range(2)] == [0.25, 0.5]


def test_reserve_never_allows_more_than_burst_plus_rate_in_any_second() -> None:
    now, used = [0.0], []
    bucket = TokenBucket(rate=10, clock=lambda: now[0])
    for _ in range(100):
        now[0] += bucket.reserve()
        used.append(now[0])
    assert max(sum(start <= t < start + 1 for t in used) for start in used) <= 20

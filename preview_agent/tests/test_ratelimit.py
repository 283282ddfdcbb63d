import pytest

from preview_agent.ratelimit import Coalescer, TokenBucket


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


def test_the_coalescer_answers_at_once_then_folds_requests_until_the_interval_has_passed() -> None:
    now = [10.0]
    requests = Coalescer(0.25, clock=lambda: now[0])
    assert requests.add("a") == 0.0
    assert requests.take() == ["a"]
    now[0] = 10.1
    assert requests.add("b") == pytest.approx(0.15)
    assert [requests.add("c"), requests.add(None)] == [None, None]  # ride on the answer already due
    assert requests.take() == ["b", "c", None]
    now[0] = 11.0
    assert requests.add("d") == 0.0


def test_the_coalescer_keeps_the_last_requests_when_a_burst_is_long() -> None:
    requests = Coalescer(0.25, keep=3, clock=lambda: 0.0)
    for index in range(10):
        requests.add(str(index))
    assert requests.take() == ["7", "8", "9"]

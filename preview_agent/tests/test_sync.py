from preview_agent.sync import Pacer


def test_the_pacer_lets_a_burst_through_then_spaces_sends_at_its_rate() -> None:
    now = [0.0]
    pacer = Pacer(rate=4, clock=lambda: now[0])
    assert [pacer.delay() for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert [pacer.delay() for _ in range(2)] == [0.25, 0.5]


def test_the_pacer_never_allows_more_than_twice_its_rate_in_any_second() -> None:
    now, sent = [0.0], []
    pacer = Pacer(rate=10, clock=lambda: now[0])
    for _ in range(100):
        now[0] += pacer.delay()
        sent.append(now[0])
    assert max(sum(start <= t < start + 1 for t in sent) for start in sent) <= 20

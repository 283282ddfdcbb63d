"""The API window the dashboard shows: error rate and response-time percentiles."""

from collections.abc import Iterator

import pytest
from django.test import Client

from velocity import http_stats


@pytest.fixture(autouse=True)
def empty_window() -> Iterator[None]:
    http_stats.reset()
    yield
    http_stats.reset()


def test_only_api_requests_are_counted_and_5xx_are_the_errors() -> None:
    for status in (200, 201, 404, 503):
        http_stats.record("/api/v1/sessions/", status, 10.0)
    http_stats.record("/dashboard/", 500, 10.0)
    stats = http_stats.api_stats()
    assert (stats.requests, stats.errors, stats.error_rate) == (4, 1, 0.25)


def test_percentiles_come_from_the_recorded_durations() -> None:
    for ms in range(1, 101):
        http_stats.record("/api/v1/quota/", 200, float(ms))
    stats = http_stats.api_stats()
    assert (stats.p50_ms, stats.p95_ms) == (51.0, 96.0)


def test_an_empty_window_has_no_rate_and_no_percentiles() -> None:
    stats = http_stats.api_stats()
    assert (stats.error_rate, stats.p50_ms, stats.p95_ms) == (None, None, None)


def test_the_request_log_middleware_feeds_the_window(client: Client) -> None:
    client.get("/api/v1/nothing-here/")
    assert http_stats.api_stats().requests == 1


def test_the_agents_long_polls_stay_out_of_the_api_percentiles() -> None:
    for _ in range(20):
        http_stats.record("/api/v1/sessions/", 200, 12.0, route="api/v1/sessions/")
        http_stats.record("/api/v1/agent/assignment/", 200, 25_000.0, route="api/v1/agent/assignment/")
    stats = http_stats.api_stats()
    assert (stats.requests, stats.p50_ms, stats.p95_ms) == (20, 12.0, 12.0)


def test_each_route_gets_its_own_row_the_agents_last() -> None:
    session = "api/v1/sessions/<uuid:session_id>/"
    for path in ("/api/v1/sessions/1/", "/api/v1/sessions/2/"):
        http_stats.record(path, 200, 8.0, route=session)
    http_stats.record("/api/v1/quota/", 503, 40.0, route="api/v1/quota/")
    http_stats.record("/api/v1/agent/assignment/", 200, 25_000.0, route="api/v1/agent/assignment/")
    rows = [(r.route, r.group, r.requests, r.errors, r.p95_ms) for r in http_stats.route_stats()]
    assert rows == [
        (session, "api", 2, 0, 8.0),
        ("api/v1/quota/", "api", 1, 1, 40.0),
        ("api/v1/agent/assignment/", "agent", 1, 0, 25_000.0),
    ]


def test_the_middleware_records_the_route_pattern_not_the_raw_path(client: Client) -> None:
    client.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000/")
    (row,) = http_stats.route_stats()
    assert row.route == "api/v1/sessions/<uuid:session_id>/"

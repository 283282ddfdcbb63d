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

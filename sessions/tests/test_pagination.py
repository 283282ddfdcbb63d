"""The API's page is DRF's limit/offset page, with the count query left out when the page settles the count."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.test import APIClient

from sessions.models import PreviewSession
from velocity.pagination import known_count

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("offset", "limit", "fetched", "count"),
    [(0, 50, 0, 0), (0, 50, 7, 7), (0, 50, 50, 50), (0, 50, 51, None), (100, 50, 3, 103), (100, 50, 0, None)],
)
def test_the_count_is_known_only_when_the_fetch_settles_it(
    offset: int, limit: int, fetched: int, count: int | None
) -> None:
    assert known_count(offset, limit, fetched) == count


def _sessions(user: uuid.UUID, count: int) -> None:
    PreviewSession.objects.bulk_create(
        PreviewSession(user_id=user, project_id=f"p{index}", status="ended", ended_at=timezone.now(), end_reason="user")
        for index in range(count)
    )


def _count_queries(client: APIClient, url: str) -> tuple[dict[str, Any], int]:
    with CaptureQueriesContext(connection) as queries:
        body = client.get(url).json()
    return body, sum("COUNT(" in query["sql"].upper() for query in queries.captured_queries)


@pytest.mark.parametrize("total", [0, 3, 5, 6])
def test_every_page_is_drfs_own_and_the_count_query_goes_only_when_needed(
    as_user: Callable[..., APIClient], total: int
) -> None:
    user = uuid.uuid4()
    _sessions(user, total)
    client = as_user(user)
    for offset in range(8):
        url = f"/api/v1/sessions/?limit=5&offset={offset}"
        ours, counts = _count_queries(client, url)
        with mock.patch("rest_framework.generics.GenericAPIView.pagination_class", LimitOffsetPagination):
            drfs = client.get(url).json()
        assert ours == drfs, url
        assert counts == (1 if total - offset > 5 or (offset >= total and offset > 0) else 0), url


def test_the_list_sends_one_query_for_a_user_with_one_page(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    _sessions(user, 50)
    body, counts = _count_queries(as_user(user), "/api/v1/sessions/")
    assert (body["count"], len(body["results"]), body["next"], counts) == (50, 50, None, 0)


@pytest.mark.parametrize("total", [0, 3])
def test_a_limit_or_an_offset_past_postgresqls_bigint_gets_a_page_not_a_server_error(
    as_user: Callable[..., APIClient], total: int
) -> None:
    """Found by the schema fuzzer: the page fetched ``limit + 1`` rows, past PostgreSQL's bigint (DRF's own page
    fails the same way once the user has a session: it slices after counting)."""
    user = uuid.uuid4()
    _sessions(user, total)
    client = as_user(user)
    huge = 20026088585892240027465354653466624
    for query, rows in ((f"limit={huge}", total), (f"limit={huge}&offset=1", max(total - 1, 0)), (f"offset={huge}", 0)):
        response = client.get(f"/api/v1/sessions/?{query}")
        assert response.status_code == 200, query
        assert (response.json()["count"], len(response.json()["results"])) == (total, rows), query

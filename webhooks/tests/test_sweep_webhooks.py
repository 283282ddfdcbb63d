"""An expiry sweep's webhooks: one `session.ended` per announced session, the endpoints read once per sweep."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions.services import session_end_expired
from sessions.testing import expired_session, expiry_sweep
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def sweep_counting_queries() -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        ended = session_end_expired(now=timezone.now())
    return ended, len(queries)


async def test_the_webhooks_get_each_ended_session_and_read_their_endpoints_once() -> None:
    user, tag = uuid.uuid4(), uuid.uuid4().hex[:8]
    for n in range(2):
        await expired_session(user, f"hooks-{tag}-{n}")
    two = await sweep_counting_queries()
    for n in range(6):
        await expired_session(user, f"hooks-{tag}-more-{n}")
    six = await sweep_counting_queries()
    assert (two[0], six[0]) == (2, 6)
    assert six[1] == two[1]  # no query per announced session (the endpoints are read once)

    await database_sync_to_async(WebhookEndpoint.objects.create)(url="https://hooks.example.com/in", secret="whsec_x")
    later = [await expired_session(user, f"hooks-{tag}-late-{n}") for n in range(2)]
    with mock.patch("webhooks.services.delivery_enqueue") as enqueue:
        assert await expiry_sweep() == 2
    keys = await database_sync_to_async(lambda: set(WebhookMessage.objects.values_list("dedupe_key", flat=True)))()
    assert keys == {f"session.ended:{s.id}" for s in later}
    assert enqueue.call_count == 2

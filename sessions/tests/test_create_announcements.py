"""A create's and an activation's announcements go out together: one hand-off to the event loop, not one each."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from realtime_bridge import publish
from sessions.models import PreviewSession
from sessions.services.lifecycle import session_activate

pytestmark = pytest.mark.django_db(transaction=True)


def _batches() -> Any:
    return mock.patch.object(publish, "_publish_collected", wraps=publish._publish_collected)


def _kinds(call: Any) -> list[str]:
    return sorted(item["kind"] for item in call.args[0])


def test_a_create_announces_its_row_its_event_and_its_status_in_one_batch(as_user: Callable[..., APIClient]) -> None:
    with _batches() as batches, mock.patch.object(publish, "async_to_sync", wraps=publish.async_to_sync) as hops:
        response = as_user(uuid.uuid4()).post("/api/v1/sessions/", {"project_id": "together"}, format="json")
    assert response.status_code == 201
    assert [_kinds(call) for call in batches.call_args_list] == [["broadcast", "event", "row_change"]]
    assert hops.call_count == 1  # dispatch_many, once


def test_an_activation_announces_in_one_batch_after_waking_the_create() -> None:
    session = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="activate-together")
    order: list[str] = []
    with (
        _batches() as batches,
        mock.patch("sessions.wakeups.ready_wake", side_effect=lambda session_id: order.append("wake")),
    ):
        batches.side_effect = lambda items: order.append("batch")
        from sessions.services.agent_events import _ready

        machine = mock.Mock(address="http://127.0.0.1:9", id=uuid.uuid4())
        with mock.patch("sessions.services.agent_events.machine_preview_url", return_value="http://p/"):
            assert _ready(session=session, machine=machine, event={"type": "ready"}, now=timezone.now()) == "activated"
    assert order == ["wake", "batch"]
    assert session_activate(session=session, preview_url="x", boot_timings={}, now=timezone.now()) is False

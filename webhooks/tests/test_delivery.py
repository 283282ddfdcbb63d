"""Deliveries through the real path: a session's event after commit, the django-q2 task, a real receiver
process that verifies the Standard Webhooks signature; retries on the scheduler's one-off schedules, the
dead letter, redelivery, SSRF refusals at delivery time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler
from prometheus_client import REGISTRY

from machines.providers import get_provider
from machines.providers.base import Guest, MachineSpec, MachineState, preview_metadata
from machines.services import machine_reconcile
from realtime_bridge import events, publish
from sessions.services import session_end
from sessions.testing import live_session
from webhooks import services, tasks
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from webhooks.testing import Receiver

pytestmark = pytest.mark.django_db


def only_delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.select_related("message").get()


def waited(delivery: WebhookDelivery) -> timedelta:
    """How long the delivery waits after its last attempt."""
    assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
    return delivery.next_attempt_at - delivery.last_attempt_at


def retry_now(delivered: Callable[[], Any], delivery: WebhookDelivery) -> None:
    """Move the clock past the delivery's next attempt and let django-q2's scheduler start it."""
    assert delivery.next_attempt_at is not None
    with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=True), delivered():
        scheduler()
    delivery.refresh_from_db()


def test_a_session_that_ends_reaches_the_receiver_signed(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    session = live_session()
    with delivered():
        session_end(session=session, reason="idle", now=timezone.now())
    [got] = receiver.received()
    assert got["verified_by"] == [0] and got["path"] == "/hooks/velocity"
    assert got["payload"]["type"] == "session.ended"
    assert got["payload"]["data"]["end_reason"] == "idle"
    assert got["payload"]["data"]["session_id"] == str(session.id)
    assert got["payload"]["data"]["user_id"] == str(session.user_id)
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 1, 200)
    assert got["headers"]["webhook-id"] == delivery.message_id
    assert delivery.last_latency_ms is not None


def test_each_lifecycle_step_is_one_message_however_often_the_row_is_announced(
    receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    session = live_session()
    endpoint = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(endpoint.secret)
    with delivered():
        for status in ("creating", "creating", "active", "active", "active"):
            publish.publish(events.session_status(session_id=str(session.id), project_id="demo", status=status))
    types = [got["payload"]["type"] for got in receiver.received()]
    assert sorted(types) == ["session.active", "session.created"]
    assert all(got["verified_by"] == [0] for got in receiver.received())


def test_an_endpoint_gets_only_the_types_it_asked_for(receiver: Receiver, delivered: Callable[[], Any]) -> None:
    session = live_session()
    endpoint = services.endpoint_create(url=receiver.url, event_types=["session.ended"], actor=None, actor_label="x")
    receiver.secrets(endpoint.secret)
    with delivered():
        publish.publish(events.session_status(session_id=str(session.id), project_id="demo", status="active"))
        session_end(session=session, reason="user", now=timezone.now())
    [got] = receiver.received()
    assert got["verified_by"] == [0] and got["payload"]["type"] == "session.ended"


def test_any_operator_event_kind_passes_through_budget_warnings_and_orphans(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    budget = {"user_id": "u1", "level": 95, "spend_usd": "9.50", "cap_usd": "10.00"}
    orphan = events.machine_orphan_destroyed(
        provider_machine_id="fly-abc", reason="unknown", hourly_cost_usd="0.0081", cost_so_far_usd="0.02"
    )
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", budget))
        publish.publish_on_commit(orphan)
        publish.publish_on_commit(events.realtime_message(project_id="p", event="file:update", data={}))
    bodies = {got["payload"]["type"]: got["payload"]["data"] for got in receiver.received()}
    assert bodies["session.budget"] == budget
    assert bodies["machine.orphan_destroyed"]["provider_machine_id"] == "fly-abc"
    assert set(bodies) == {"session.budget", "machine.orphan_destroyed"}


def test_a_500_is_tried_again_on_the_backoff_schedule_until_it_succeeds(
    start_receiver: Callable[[str], Receiver], delivered: Callable[[], Any]
) -> None:
    receiver = start_receiver("500,503,200")
    endpoint = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(endpoint.secret)
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("retrying", 1, 500)
    assert waited(delivery) == timedelta(seconds=5)
    assert Schedule.objects.get(name=f"webhook-retry-{delivery.id}-1").next_run == delivery.next_attempt_at
    retry_now(delivered, delivery)
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("retrying", 2, 503)
    assert waited(delivery) == timedelta(seconds=30)
    retry_now(delivered, delivery)
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("delivered", 3, 200)
    received = receiver.received()
    assert [got["answered"] for got in received] == [500, 503, 200]
    assert {got["headers"]["webhook-id"] for got in received} == {delivery.message_id}
    assert all(got["verified_by"] == [0] for got in received)
    assert not Schedule.objects.filter(name__startswith="webhook-retry-").exists()


@override_settings(WEBHOOKS_RETRY_SCHEDULE="1,2")
def test_after_the_last_attempt_a_delivery_is_a_dead_letter(
    start_receiver: Callable[[str], Receiver], delivered: Callable[[], Any]
) -> None:
    receiver = start_receiver("500")
    endpoint = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(endpoint.secret)
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 100}))
    delivery = only_delivery()
    dead_before = REGISTRY.get_sample_value("velocity_webhook_attempts_total", {"result": "dead"}) or 0
    retry_now(delivered, delivery)
    retry_now(delivered, delivery)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("dead", 3, None)
    assert REGISTRY.get_sample_value("velocity_webhook_attempts_total", {"result": "dead"}) == dead_before + 1
    assert delivery.last_error == "HTTP 500"
    assert not Schedule.objects.filter(name__startswith="webhook-retry-").exists()
    assert "not open" in tasks.deliver_webhook(str(delivery.id))
    assert len(receiver.received()) == 3


def test_a_dead_letter_is_redelivered_with_the_same_id(
    start_receiver: Callable[[str], Receiver], delivered: Callable[[], Any]
) -> None:
    receiver = start_receiver("500,200")
    endpoint = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(endpoint.secret)
    with override_settings(WEBHOOKS_RETRY_SCHEDULE=""), delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 100}))
    dead = only_delivery()
    assert dead.status == "dead"
    with delivered():
        again = services.delivery_redeliver(delivery=dead, actor=None, actor_label="test")
    again.refresh_from_db()
    assert (again.status, again.attempts, again.redelivery_of_id) == ("delivered", 1, dead.id)
    first, second = receiver.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == dead.message_id
    assert second["verified_by"] == [0]


def test_an_open_delivery_is_not_redelivered(endpoint: WebhookEndpoint) -> None:
    message = WebhookMessage.objects.create(id="msg_open", event_type="session.budget", payload={})
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, message=message)
    with pytest.raises(services.DeliveryOpen):
        services.delivery_redeliver(delivery=delivery, actor=None, actor_label="test")
    assert WebhookDelivery.objects.count() == 1


def test_after_a_rotation_both_secrets_sign_for_a_day(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    old = endpoint.secret
    new = services.endpoint_rotate_secret(endpoint=endpoint, actor=None, actor_label="test", now=timezone.now())
    receiver.secrets(old, new)
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    [got] = receiver.received()
    assert got["verified_by"] == [0, 1] and new != old
    assert len(got["headers"]["webhook-signature"].split(" ")) == 2
    assert services.signing_secrets(endpoint, now=timezone.now() + timedelta(days=1, seconds=1)) == [new]


def test_a_disabled_endpoint_gets_nothing(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    services.endpoint_update(endpoint=endpoint, values={"enabled": False}, actor=None, actor_label="test")
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    assert receiver.received() == [] and not WebhookDelivery.objects.exists()


@pytest.mark.slow
def test_a_real_orphan_destroyed_by_reconciliation_reaches_the_receiver(
    local: Path, endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    provider = get_provider()
    metadata = preview_metadata(session_id="", project_id="", user_id="")
    spec = MachineSpec(name="stray", guest=Guest(memory_mb=256), env={"INACTIVITY_TIMEOUT": "600"}, metadata=metadata)
    provider.create(spec)
    provider.wait_for_state("stray", MachineState.STARTED, timeout=20)
    with delivered():
        report = machine_reconcile(now=timezone.now(), grace=timedelta(0))
    assert report is not None and report.orphans == 1
    [got] = receiver.received()
    assert got["verified_by"] == [0] and got["payload"]["type"] == "machine.orphan_destroyed"
    data = got["payload"]["data"]
    assert (data["provider_machine_id"], data["reason"], data["machine_id"]) == ("stray", "unknown", None)
    assert float(data["hourly_cost_usd"]) > 0


def test_a_delivery_another_worker_is_sending_is_left_to_it_until_its_lease_ends(
    endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    publish.publish(events.Event("session.budget", {"level": 80}))  # enqueued only on a commit that never comes
    delivery = only_delivery()
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=now + timedelta(seconds=40))
    assert services.delivery_attempt(delivery_id=delivery.id, now=now) is None
    assert receiver.received() == []
    taken_over = services.delivery_attempt(delivery_id=delivery.id, now=now + timedelta(seconds=41))
    assert taken_over is not None and (taken_over.status, taken_over.claimed_until) == ("delivered", None)
    assert [got["verified_by"] for got in receiver.received()] == [[0]]


def test_old_finished_messages_are_pruned_and_open_ones_kept(endpoint: WebhookEndpoint) -> None:
    now = timezone.now()
    for name, status, age in (("old_done", "delivered", 40), ("old_open", "retrying", 40), ("new_dead", "dead", 2)):
        message = WebhookMessage.objects.create(
            id=f"msg_{name}", event_type="session.budget", payload={}, created_at=now - timedelta(days=age)
        )
        WebhookDelivery.objects.create(endpoint=endpoint, message=message, status=status)
    assert services.webhooks_prune(now=now, keep=timedelta(days=30)) == 1
    assert set(WebhookMessage.objects.values_list("id", flat=True)) == {"msg_old_open", "msg_new_dead"}
    assert WebhookDelivery.objects.count() == 2
    assert tasks.prune_webhooks() == "pruned 0 webhook message(s) older than 30 days"


def test_a_budget_warning_announced_for_each_of_a_users_sessions_is_one_webhook(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    def warning(level: int, session: str) -> events.Event:
        return events.session_budget(
            user_id="u1", level=level, spend_usd="8.00", cap_usd="10.00", session_id=session, project_id="p"
        )

    with delivered():
        for session in ("s1", "s2"):  # the budget check announces it on each live session's groups
            publish.publish_on_commit(warning(80, session))
        publish.publish_on_commit(warning(95, "s1"))
    levels = sorted(got["payload"]["data"]["level"] for got in receiver.received())
    assert levels == [80, 95]

"""The webhook pages: staff only and CSRF-protected; an endpoint registered shows its secret once; private
URLs refused with the reason; edits, rotations, deletions and redeliveries audited with the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django_q.conf import Conf

from dashboard import audit_log
from dashboard.models import AuditRecord
from realtime_bridge import events, publish
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.testing import Receiver, receiver_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with override_settings(WEBHOOKS_ALLOW_PRIVATE=True), receiver_process(tmp_path) as started:
        yield started


@pytest.fixture
def endpoint(receiver: Receiver) -> WebhookEndpoint:
    created = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(created.secret)
    return created


def urls(endpoint: WebhookEndpoint, delivery: WebhookDelivery | None = None) -> list[tuple[str, str]]:
    pages = [("get", reverse("dashboard:webhooks")), ("get", reverse("dashboard:webhook", args=[endpoint.id]))]
    actions = [
        ("post", reverse("dashboard:webhooks")),
        ("post", reverse("dashboard:webhook-rotate", args=[endpoint.id])),
        ("post", reverse("dashboard:webhook-delete", args=[endpoint.id])),
    ]
    if delivery is not None:
        actions.append(("post", reverse("dashboard:webhook-redeliver", args=[delivery.id])))
    return pages + actions


def test_only_staff_reach_the_webhook_pages(client: Client, django_user_model: Any, endpoint: WebhookEndpoint) -> None:
    client.force_login(django_user_model.objects.create_user("editor", password="pw-editor"))
    for method, url in urls(endpoint):
        response = getattr(client, method)(url, {"url": "https://evil.example.com/"})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert WebhookEndpoint.objects.get() == endpoint and AuditRecord.objects.count() == 1


def test_a_post_without_the_csrf_token_is_refused(django_user_model: Any, endpoint: WebhookEndpoint) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.create_user("op", password="pw-op", is_staff=True))
    for _, url in urls(endpoint)[2:]:
        assert strict.post(url, {"url": "https://hooks.example.com/"}).status_code == 403, url
    assert WebhookEndpoint.objects.count() == 1 and endpoint.secret == WebhookEndpoint.objects.get().secret


def test_an_operator_registers_an_endpoint_and_sees_the_secret_once(staff_client: Any) -> None:
    data = {"url": "https://hooks.example.com/velocity", "event_types": ["session.ended"], "enabled": "on"}
    response = staff_client.post(reverse("dashboard:webhooks"), data)
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200 and endpoint.secret in response.content.decode()
    assert (endpoint.event_types, endpoint.enabled) == (["session.ended"], True)
    for url in (reverse("dashboard:webhooks"), reverse("dashboard:webhook", args=[endpoint.id])):
        assert endpoint.secret not in staff_client.get(url).content.decode()
    record = AuditRecord.objects.get(action="webhook.create")
    assert record.actor == staff_client.operator
    target = audit_log.audit_target(record)
    assert (target.text, target.url) == ("webhook endpoint", reverse("dashboard:webhook", args=[endpoint.id]))


def test_a_private_url_is_refused_with_the_reason(staff_client: Any) -> None:
    with override_settings(WEBHOOKS_ALLOW_PRIVATE=False):
        response = staff_client.post(reverse("dashboard:webhooks"), {"url": "http://169.254.169.254/latest/"})
    assert response.status_code == 400
    assert "169.254.169.254 is a link-local address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_operator_disables_rotates_and_deletes(staff_client: Any, endpoint: WebhookEndpoint) -> None:
    detail = reverse("dashboard:webhook", args=[endpoint.id])
    saved = staff_client.post(detail, {"url": endpoint.url, "description": "ops"})  # Enabled unticked
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.description) == (False, "ops")
    old = endpoint.secret
    rotated = staff_client.post(reverse("dashboard:webhook-rotate", args=[endpoint.id]))
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in rotated.content.decode()
    assert staff_client.post(reverse("dashboard:webhook-delete", args=[endpoint.id])).status_code == 302
    assert not WebhookEndpoint.objects.exists()
    actions = AuditRecord.objects.filter(actor=staff_client.operator).values_list("action", flat=True)
    assert sorted(actions) == ["webhook.delete", "webhook.rotate_secret", "webhook.update"]


def test_deliveries_are_listed_and_one_is_redelivered(
    staff_client: Any, endpoint: WebhookEndpoint, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(Conf, "SYNC", True), django_capture_on_commit_callbacks(execute=True):
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    delivery = WebhookDelivery.objects.get()
    page = staff_client.get(reverse("dashboard:webhook", args=[endpoint.id])).content.decode()
    assert "session.budget" in page and ">delivered<" in page and "200" in page
    with mock.patch.object(Conf, "SYNC", True), django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("dashboard:webhook-redeliver", args=[delivery.id]))
    assert response.status_code == 302
    assert [got["verified_by"] for got in receiver.received()] == [[0], [0]]
    assert WebhookDelivery.objects.filter(redelivery_of=delivery, status="delivered").count() == 1
    assert AuditRecord.objects.get(action="webhook.redeliver").actor == staff_client.operator


def test_the_list_counts_each_endpoints_dead_and_retrying_deliveries(
    staff_client: Any, endpoint: WebhookEndpoint, django_assert_max_num_queries: Any
) -> None:
    publish.publish(events.Event("session.budget", {"level": 80}))
    publish.publish(events.Event("session.budget", {"level": 95}))
    first, second = WebhookDelivery.objects.order_by("created_at")
    WebhookDelivery.objects.filter(pk=first.pk).update(status="dead")
    WebhookDelivery.objects.filter(pk=second.pk).update(status="retrying")
    services.endpoint_create(url="https://other.example.com/", event_types=[], actor=None, actor_label="test")
    with django_assert_max_num_queries(8):
        page = staff_client.get(reverse("dashboard:webhooks")).content.decode()
    assert "1 dead" in page and "1 retrying" in page

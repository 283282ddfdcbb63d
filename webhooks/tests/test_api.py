"""The service-role API: endpoints (create with the secret shown once, read, change, rotate, delete) and their
deliveries (list, redeliver), each write audited; a user's token is refused on every door."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from realtime_bridge import events, publish
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.testing import Receiver

pytestmark = pytest.mark.django_db
BASE = "/api/v1/webhooks"


def register(client: APIClient, url: str, **extra: Any) -> Any:
    return client.post(f"{BASE}/endpoints/", {"url": url, **extra}, format="json")


def test_the_service_role_registers_an_endpoint_and_sees_its_secret_once(
    as_service: APIClient, audits: list[dict[str, Any]]
) -> None:
    created = register(as_service, "https://hooks.example.com/velocity", event_types=["session.ended"])
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["session.ended"]
    shown = as_service.get(f"{BASE}/endpoints/{body['id']}/").json()
    assert "secret" not in shown and shown["url"] == "https://hooks.example.com/velocity"
    listed = as_service.get(f"{BASE}/endpoints/").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]] and "secret" not in listed[0]
    [record] = audits
    assert (record["action"], record["actor_label"], record["target_id"]) == (
        "webhook.create",
        "service_role",
        body["id"],
    )


def test_an_unknown_event_type_is_refused(as_service: APIClient) -> None:
    response = register(as_service, "https://hooks.example.com/", event_types=["session.exploded"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request.invalid"
    assert not WebhookEndpoint.objects.exists()


def test_the_service_role_changes_rotates_and_deletes_an_endpoint(
    as_service: APIClient, audits: list[dict[str, Any]]
) -> None:
    endpoint = register(as_service, "https://hooks.example.com/").json()
    path = f"{BASE}/endpoints/{endpoint['id']}/"
    changed = as_service.patch(path, {"enabled": False, "description": "billing"}, format="json").json()
    assert (changed["enabled"], changed["description"], changed["url"]) == (False, "billing", endpoint["url"])
    rotated = as_service.post(f"{path}rotate-secret/").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != endpoint["secret"]
    assert WebhookEndpoint.objects.get().previous_secret == endpoint["secret"]
    assert as_service.delete(path).status_code == 204
    assert as_service.get(path).status_code == 404
    actions = [record["action"] for record in audits]
    assert actions == ["webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.delete"]


def test_deliveries_are_listed_and_a_finished_one_redelivered(
    as_service: APIClient,
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    delivered: Callable[[], Any],
    audits: list[dict[str, Any]],
) -> None:
    with delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 95}))
    [row] = as_service.get(f"{BASE}/deliveries/?endpoint={endpoint.id}").json()["results"]
    assert (row["status"], row["attempts"], row["last_response_code"], row["event_type"]) == (
        "delivered",
        1,
        200,
        "session.budget",
    )
    with delivered():
        again = as_service.post(f"{BASE}/deliveries/{row['id']}/redeliver/")
    assert again.status_code == 202 and again.json()["redelivery_of_id"] == row["id"]
    assert [got["headers"]["webhook-id"] for got in receiver.received()] == [row["message_id"]] * 2
    assert as_service.get(f"{BASE}/deliveries/?status=delivered").json()["count"] == 2
    assert [record["action"] for record in audits] == ["webhook.redeliver"]


def test_an_open_delivery_cannot_be_redelivered(as_service: APIClient, endpoint: WebhookEndpoint) -> None:
    publish.publish(events.Event("session.budget", {"level": 95}))  # enqueued only on a commit that never comes
    delivery = WebhookDelivery.objects.get()
    response = as_service.post(f"{BASE}/deliveries/{delivery.id}/redeliver/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "webhook.delivery_open"


DOORS = [
    ("GET", "/endpoints/"),
    ("POST", "/endpoints/"),
    ("GET", "/endpoints/{endpoint}/"),
    ("PATCH", "/endpoints/{endpoint}/"),
    ("DELETE", "/endpoints/{endpoint}/"),
    ("POST", "/endpoints/{endpoint}/rotate-secret/"),
    ("GET", "/deliveries/"),
    ("POST", "/deliveries/{delivery}/redeliver/"),
]


@pytest.mark.parametrize(("method", "path"), DOORS)
def test_a_strangers_token_is_refused_on_every_door(
    as_stranger: APIClient, endpoint: WebhookEndpoint, method: str, path: str, audits: list[dict[str, Any]]
) -> None:
    """A user (any tenant) may not see, add or change the operator's endpoints, nor read what they receive."""
    publish.publish(events.Event("session.budget", {"level": 95}))
    delivery = WebhookDelivery.objects.get()
    url = BASE + path.format(endpoint=endpoint.id, delivery=delivery.id)
    body = {"url": "https://evil.example.com/", "enabled": False}
    response = as_stranger.generic(method, url, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "auth.forbidden"
    endpoint.refresh_from_db()
    assert (endpoint.enabled, WebhookEndpoint.objects.count(), audits) == (True, 1, [])


def test_without_a_token_nothing_is_answered(endpoint: WebhookEndpoint) -> None:
    response = APIClient().get(f"{BASE}/endpoints/")
    assert response.status_code == 401


def test_an_unknown_endpoint_is_404_for_the_service_role(as_service: APIClient) -> None:
    assert as_service.get(f"{BASE}/endpoints/{uuid.uuid4()}/").status_code == 404
    assert as_service.post(f"{BASE}/deliveries/{uuid.uuid4()}/redeliver/").status_code == 404
    assert as_service.get(f"{BASE}/deliveries/?endpoint=nope").status_code == 400

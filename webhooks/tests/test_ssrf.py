"""SSRF: private, loopback, link-local and other non-public addresses are refused at registration (a literal
host) and at delivery (every address the host resolves to), unless WEBHOOKS_ALLOW_PRIVATE."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from realtime_bridge import events, publish
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.ssrf import UnsafeUrl, address_refusal, registration_check, resolve_checked, url_target
from webhooks.testing import Receiver

REFUSED = {
    "127.0.0.1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fd00::1": "private",
    "::ffff:127.0.0.1": "loopback",
    "0.0.0.0": "unspecified",  # noqa: S104
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "100.64.0.1": "not a public",
}


@pytest.mark.parametrize(("address", "kind"), REFUSED.items())
def test_a_non_public_address_is_refused_with_its_kind(address: str, kind: str) -> None:
    assert kind in address_refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_a_public_address_is_accepted(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == ""


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/x", "http://10.0.0.5/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/"],
)
def test_registration_refuses_a_literal_private_host_unless_allowed(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="public addresses only"):
        registration_check(url, allow_private=False)
    registration_check(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://localhost:8000/", "this machine"),
        ("http://example.com:99999/", "port"),
    ],
)
def test_registration_refuses_what_is_not_a_plain_web_url(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        registration_check(url, allow_private=False)


def test_a_name_is_resolved_and_every_address_checked() -> None:
    with pytest.raises(UnsafeUrl, match=r"localhost resolves to (127\.0\.0\.1|::1) is a loopback address"):
        resolve_checked(url_target("http://localhost:1/"), allow_private=False)
    assert str(resolve_checked(url_target("http://localhost:1/"), allow_private=True)) in ("127.0.0.1", "::1")


@pytest.mark.django_db
def test_the_api_refuses_a_private_url_with_a_clear_error(as_service: Any) -> None:
    with override_settings(WEBHOOKS_ALLOW_PRIVATE=False):
        for url in ("http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/"):
            response = as_service.post("/api/v1/webhooks/endpoints/", {"url": url}, format="json")
            assert response.status_code == 400
            assert "public addresses only" in response.json()["error"]["details"]["fields"]["url"][0]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_delivery_to_an_address_now_private_is_refused_and_never_sent(
    endpoint: WebhookEndpoint, receiver: Receiver, delivered: Callable[[], Any]
) -> None:
    """Registered while allowed (or resolving elsewhere then), the host is checked again when sending."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE=False, WEBHOOKS_RETRY_SCHEDULE=""), delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_response_code) == ("dead", None)
    assert "127.0.0.1 is a loopback address" in delivery.last_error
    assert receiver.received() == []


@pytest.mark.django_db
def test_a_redirect_is_not_followed(start_receiver: Callable[[str], Receiver], delivered: Callable[[], Any]) -> None:
    receiver = start_receiver("302")
    endpoint = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="test")
    receiver.secrets(endpoint.secret)
    with override_settings(WEBHOOKS_RETRY_SCHEDULE=""), delivered():
        publish.publish_on_commit(events.Event("session.budget", {"level": 80}))
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_response_code) == ("dead", 302)
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.received()) == 1

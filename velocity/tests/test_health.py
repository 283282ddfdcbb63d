from unittest import mock

import pytest
from django.test import Client, override_settings

BROKEN_REDIS_LAYER = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Port 1 on loopback refuses connections: a real "Redis is down".
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> None:
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.mark.django_db
def test_health_reports_ok_with_the_seed_fields_and_checks(client: Client) -> None:
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert {"timestamp", "uptime", "version"} <= body.keys()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["channel_layer"]["status"] == "ok"


@pytest.mark.django_db
def test_health_is_degraded_and_names_the_channel_layer_when_redis_is_down(client: Client) -> None:
    with override_settings(CHANNEL_LAYERS=BROKEN_REDIS_LAYER):
        response = client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_health_is_degraded_when_the_database_is_down(client: Client) -> None:
    # A fake for a fault we cannot cause from inside the test: the test database must stay up.
    with mock.patch("velocity.health.connection.cursor", side_effect=ConnectionError("refused")):
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]

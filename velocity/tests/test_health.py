import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import websockets
from django.test import Client, override_settings
from django.utils import timezone
from django_q.signing import SignedPackage

from realtime_bridge.testing import RealtimeServer, service_token
from sessions.models import PreviewSession, SessionStatus
from velocity.testing import cluster_beat, require

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


@pytest.fixture(autouse=True)
def own_queue(isolated_task_queue: Any) -> Any:
    return isolated_task_queue


@pytest.fixture
def cluster(db: Any) -> Any:
    """A task cluster that has just reported (tests have no real one running)."""
    return cluster_beat(age=0)


@pytest.mark.usefixtures("cluster")
def test_health_reports_ok_with_the_seed_fields_and_checks(client: Client) -> None:
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert {"timestamp", "uptime", "version"} <= body.keys()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["channel_layer"]["status"] == "ok"
    assert body["checks"]["worker"] | {"heartbeat_age_s": 0} == {
        "status": "ok",
        "clusters": 1,
        "workers": 2,
        "heartbeat_age_s": 0,
        "last_status": "Idle",
        "stale_after_s": 15,
    }
    assert body["checks"]["queue"]["status"] == "ok"


@pytest.mark.usefixtures("cluster")
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
    # without the database nothing else can be read either: the worker's heartbeat and the queue are unknown
    assert response.json()["failing"][0] == "database"


@pytest.mark.django_db
def test_a_stopped_cluster_degrades_health_but_keeps_200_so_web_machines_are_not_restarted(client: Client) -> None:
    cluster_beat(age=60)  # its last heartbeat a minute ago: paused, killed or wedged
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["failing"]) == ("degraded", ["worker"])
    assert body["checks"]["worker"]["status"] == "down"
    assert body["checks"]["worker"]["heartbeat_age_s"] >= 60


@pytest.mark.django_db
def test_a_cluster_that_stopped_cleanly_is_down_at_once(client: Client) -> None:
    cluster_beat(age=0, status="Stopped")
    assert client.get("/health").json()["checks"]["worker"]["status"] == "down"


@pytest.mark.django_db
def test_no_cluster_ever_is_down(client: Client) -> None:
    worker = client.get("/health").json()["checks"]["worker"]
    assert (worker["status"], worker["heartbeat_age_s"], worker["last_status"]) == ("down", None, "none")


@pytest.mark.usefixtures("cluster")
def test_a_session_stuck_in_creating_degrades_the_queue_check(client: Client) -> None:
    stuck = PreviewSession.objects.create(user_id="00000000-0000-0000-0000-000000000001", project_id="p")
    PreviewSession.objects.filter(id=stuck.id).update(created_at=timezone.now() - timedelta(seconds=91))
    response = client.get("/health")
    queue = response.json()["checks"]["queue"]
    assert response.status_code == 200
    assert (queue["status"], queue["stuck_creating"]) == ("degraded", 1)
    assert stuck.status == SessionStatus.CREATING


@pytest.mark.usefixtures("cluster")
def test_a_task_waiting_past_the_lag_limit_degrades_the_queue_check(client: Client, own_queue: Any) -> None:
    waited = timezone.now() - timedelta(seconds=120)
    own_queue.enqueue(SignedPackage.dumps({"id": "t1", "func": "math.floor", "started": waited}))
    queue = client.get("/health").json()["checks"]["queue"]
    assert (queue["status"], queue["queued"]) == ("degraded", 1)
    assert 119 <= queue["oldest_age_s"] <= 130


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_channel_layer_check_stays_ok_once_a_websocket_has_started_the_realtime_hub(tmp_path: Path) -> None:
    """With Redis, the first websocket starts the hub, whose receive on its process channel never ends; the
    check's own receive must still get its message (it once waited for a turn that never came: 503)."""
    require(os.environ.get("REDIS_URL"), "the Redis channel layer needs Redis (REDIS_URL)")
    server = RealtimeServer(tmp_path).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        first = httpx.get(f"{base}/health", timeout=10).json()["checks"]["channel_layer"]
        assert first["status"] == "ok"
        asyncio.run(_open_and_close(f"ws://127.0.0.1:{server.port}/realtime/v1/websocket"))
        for _ in range(3):
            check = httpx.get(f"{base}/health", timeout=10).json()["checks"]["channel_layer"]
            assert check["status"] == "ok", check
    finally:
        server.stop()


async def _open_and_close(url: str) -> None:
    async with websockets.connect(f"{url}?apikey={service_token()}&vsn=1.0.0") as socket:
        await socket.ping()

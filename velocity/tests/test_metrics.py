"""``/metrics`` after a whole session life cycle, route labels, the Fly hook, multiprocess mode and the listener."""

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from machines.models import Machine
from machines.testing.fly_fake import FakeFly, running
from sessions import services, tasks
from sessions.models import PreviewSession
from velocity.auth import issue_token
from velocity.logging import RequestLogMiddleware
from velocity.testing import REPO_ROOT, embedded_env, free_port, manage, wait_for_http

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[set[str], Samples]:
    families, samples = set(), {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


def scrape(client: APIClient) -> tuple[set[str], Samples]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def live_cycle(client: APIClient) -> PreviewSession:
    """Create (API) → provision (Fly) → ready → one edit and its ack (realtime REST broadcast) → end (API)."""
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=uuid.uuid4())}")
    session_id = client.post("/api/v1/sessions/", {"project_id": "metrics-demo"}, format="json").json()["id"]
    assert tasks.provision_session(session_id).endswith("started")
    machine = Machine.objects.get(sessions__id=session_id)
    assert services.session_handle_agent_event(machine=machine, event={"type": "ready"}, now=timezone.now()) == (
        "activated"
    )
    edit = {"path": "src/App.tsx", "version": "1"}
    for event, payload in (("file:update", {**edit, "content": "x"}), ("file:synced", {**edit, "latency_ms": 5})):
        message = {"topic": "project:metrics-demo", "event": event, "payload": payload, "private": True}
        assert client.post("/realtime/v1/api/broadcast", {"messages": [message]}, format="json").status_code == 202
    assert client.delete(f"/api/v1/sessions/{session_id}/").json()["status"] == "ended"
    return PreviewSession.objects.get(id=session_id)


# Transactional: the realtime endpoint's database_sync_to_async closes a connection left inside a test's atomic block.
@pytest.mark.django_db(transaction=True)
def test_metrics_expose_every_family_after_a_session_life_cycle(fly_api: FakeFly) -> None:
    client = APIClient()
    _, before = scrape(client)
    session = live_cycle(client)
    families, after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("velocity_machines_created_total", reason="session") == 1
    assert grew("velocity_machines_destroyed_total", reason="user") == 1
    assert grew("velocity_session_create_to_active_seconds_count") == 1
    assert grew("velocity_realtime_messages_total", event="file:update") == 1
    assert grew("velocity_realtime_edit_to_ack_seconds_count") == 1
    assert grew("velocity_http_request_duration_seconds_count", route="api/v1/sessions/", method="POST") == 1
    assert grew("velocity_fly_api_requests_total", operation="create", status="200") == 1
    assert grew("velocity_fly_api_requests_total", operation="destroy", status="200") == 1
    assert grew("velocity_machine_cost_usd_total", provider="fly") > 0
    assert value(after, "velocity_sessions", status="ended") >= 1
    assert value(after, "velocity_machines", state="destroyed") >= 1
    assert session.machine is not None and session.machine.state == "destroyed"
    assert {"velocity_http_request_errors", "velocity_machines_live_cost_usd", "velocity_sessions_ended"} <= families


def test_http_metrics_use_the_route_pattern_and_count_server_errors() -> None:
    from velocity.metrics import HTTP_DURATION, HTTP_ERRORS

    def broken(request: object) -> HttpResponse:
        return HttpResponse(status=503)

    errors = HTTP_ERRORS.labels(route="<unmatched>", status="503")
    before = errors._value.get()
    RequestLogMiddleware(broken)(RequestFactory().get("/no/such/route/123"))
    assert errors._value.get() == before + 1
    routes = {s.labels.get("route") for metric in HTTP_DURATION.collect() for s in metric.samples}
    assert not any("123" in str(route) for route in routes)


@pytest.mark.django_db
def test_metrics_want_the_bearer_token_when_one_is_set() -> None:
    client = APIClient()
    with override_settings(METRICS_TOKEN="scrape-me"):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


WRITER = """
import sys
from velocity import metrics
metrics.machine_created(warm=sys.argv[1] == "warm")
"""
READER = """
import django
django.setup()
from prometheus_client import generate_latest
from velocity.metrics_exporter import scrape_registry
print(generate_latest(scrape_registry(close_db=True)).decode())
"""


def run_python(code: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_counters_from_several_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    env = embedded_env(
        tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"), DJANGO_SETTINGS_MODULE="velocity.settings"
    )
    manage(env, "migrate", "-v0")
    for kind in ("session", "session", "warm"):
        run_python(WRITER, env, kind)
    _, samples = parse(run_python(READER, env))
    assert value(samples, "velocity_machines_created_total", reason="session") == 2
    assert value(samples, "velocity_machines_created_total", reason="warm_pool") == 1
    assert value(samples, "velocity_sessions", status="active") == 0


@pytest.mark.slow
def test_the_supervisor_serves_metrics_on_metrics_port_and_cleans_the_directory(tmp_path: Path) -> None:
    stale = tmp_path / "prom" / "counter_99999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    port, metrics_port = free_port(), free_port()
    env = embedded_env(
        tmp_path,
        PORT=str(port),
        METRICS_PORT=str(metrics_port),
        PROMETHEUS_ENABLED="true",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    manage(env, "migrate", "-v0")
    supervisor = subprocess.Popen([sys.executable, "-m", "velocity.run", "web"], cwd=REPO_ROOT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=30)
        assert not stale.exists()
        families, _ = parse(wait_for_http(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text)
        assert {"velocity_sessions", "velocity_http_request_duration_seconds"} <= families
        _, samples = parse(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
        assert value(samples, "velocity_http_request_duration_seconds_count", route="health", method="GET") >= 1
    finally:
        supervisor.terminate()
        assert supervisor.wait(timeout=30) == 0


def test_the_fly_client_reports_every_attempt_to_its_hook() -> None:
    from machines.providers.fly import FlyConfig, FlyProvider

    seen: list[tuple[str, int | None]] = []
    record: Callable[[str, int | None, float], None] = lambda op, status, seconds: seen.append((op, status))  # noqa: E731
    with running(FakeFly()) as fake:
        config = FlyConfig(api_token="t", app_name="previews", base_url=fake.base_url, image="img:1")
        with FlyProvider(config, on_request=record) as client:
            assert client.list() == []
            client.destroy("missing")
    assert seen == [("list", 200), ("destroy", 404)]

"""The preview route: on its own host a Fly machine gets a fly-replay answer naming it; ended sessions never do."""

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from machines.services import machine_preview_url
from machines.tests.factories import machine_with_history
from sessions.models import EndReason, PreviewSession, SessionStatus

pytestmark = pytest.mark.django_db
Host = Callable[["PreviewSession | uuid.UUID"], str]


def session_on(provider: str, *, state: str = "started", status: str = SessionStatus.ACTIVE) -> PreviewSession:
    at = timezone.now() - timedelta(minutes=1)
    history = [("created", at)] + ([(state, at)] if state != "created" else [])
    machine = machine_with_history(history, provider=provider, provider_machine_id="e784079b449483", app="previews")
    machine.address = "http://127.0.0.1:5173"
    machine.save(update_fields=["address"])
    ended = {"ended_at": timezone.now(), "end_reason": EndReason.OPERATOR} if status == SessionStatus.ENDED else {}
    return PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="p", machine=machine, status=status, **ended)


@pytest.fixture
def on_preview_host(settings: Any) -> Host:
    """Fly previews answer only on their own host: the Host of a session's preview."""
    settings.PREVIEW_HOST_SUFFIX = "preview.example-previews.dev"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".preview.example-previews.dev"]

    def host(session: PreviewSession | uuid.UUID) -> str:
        session_id = session.id if isinstance(session, PreviewSession) else session
        return f"{session_id}.preview.example-previews.dev"

    return host


def test_a_fly_preview_is_replayed_to_exactly_its_machine(client: Client, on_preview_host: Host) -> None:
    session = session_on("fly")
    response = client.get("/src/App.tsx?import", HTTP_HOST=on_preview_host(session))
    assert response.status_code == 200
    assert response["fly-replay"] == "app=previews;instance=e784079b449483"
    assert response.content == b""


def test_websocket_upgrades_and_posts_are_replayed_too(client: Client, on_preview_host: Host) -> None:
    session = session_on("fly")
    upgrade = client.get("/", HTTP_CONNECTION="Upgrade", HTTP_UPGRADE="websocket", HTTP_HOST=on_preview_host(session))
    post = client.post("/api/form", {"a": "1"}, HTTP_HOST=on_preview_host(session))
    assert "instance=e784079b449483" in upgrade["fly-replay"]
    assert "instance=e784079b449483" in post["fly-replay"]


def test_an_ended_session_gets_a_clear_410_page_and_no_replay(client: Client, on_preview_host: Host) -> None:
    session = session_on("fly", status=SessionStatus.ENDED)
    response = client.get("/", HTTP_HOST=on_preview_host(session))
    assert response.status_code == 410
    assert "fly-replay" not in response
    assert b"This preview has ended" in response.content and b"Ended by an operator" in response.content


def test_an_unknown_session_is_a_404_page_and_a_booting_one_a_503_that_retries(
    client: Client, on_preview_host: Host
) -> None:
    unknown = client.get("/", HTTP_HOST=on_preview_host(uuid.uuid4()))
    booting = client.get("/", HTTP_HOST=on_preview_host(session_on("fly", state="starting")))
    assert (unknown.status_code, booting.status_code) == (404, 503)
    assert "fly-replay" not in unknown and "fly-replay" not in booting
    assert booting["Retry-After"] == "2"


def test_a_local_preview_redirects_to_the_agents_own_port(client: Client) -> None:
    session = session_on("local")
    response = client.get(f"/preview/{session.id}/index.html?x=1")
    assert (response.status_code, response["Location"]) == (302, "http://127.0.0.1:5173/index.html?x=1")
    assert session.machine is not None
    assert machine_preview_url(session.machine, session) == "http://127.0.0.1:5173/"


def test_a_preview_host_keeps_its_paths_and_other_hosts_are_the_orchestrator(
    client: Client, on_preview_host: Host
) -> None:
    session = session_on("fly")
    response = client.get("/assets/main.js", HTTP_HOST=on_preview_host(session))
    assert response["fly-replay"] == "app=previews;instance=e784079b449483"
    assert session.machine is not None
    assert machine_preview_url(session.machine, session) == f"https://{session.id}.preview.example-previews.dev/"
    assert client.get("/health").status_code == 200

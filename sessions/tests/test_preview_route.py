"""The preview route: Fly machines get a fly-replay answer naming the machine; ended sessions never do."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from machines.services import machine_preview_url
from machines.tests.factories import machine_with_history
from sessions.models import EndReason, PreviewSession, SessionStatus

pytestmark = pytest.mark.django_db


def session_on(provider: str, *, state: str = "started", status: str = SessionStatus.ACTIVE) -> PreviewSession:
    at = timezone.now() - timedelta(minutes=1)
    history = [("created", at)] + ([(state, at)] if state != "created" else [])
    machine = machine_with_history(history, provider=provider, provider_machine_id="e784079b449483", app="previews")
    machine.address = "http://127.0.0.1:5173"
    machine.save(update_fields=["address"])
    ended = {"ended_at": timezone.now(), "end_reason": EndReason.OPERATOR} if status == SessionStatus.ENDED else {}
    return PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="p", machine=machine, status=status, **ended)


def test_a_fly_preview_is_replayed_to_exactly_its_machine(client: Client) -> None:
    session = session_on("fly")
    response = client.get(f"/preview/{session.id}/src/App.tsx?import")
    assert response.status_code == 200
    assert response["fly-replay"] == f"app=previews;instance=e784079b449483;state=/preview/{session.id}"
    assert response.content == b""


def test_websocket_upgrades_and_posts_are_replayed_too(client: Client) -> None:
    session = session_on("fly")
    upgrade = client.get(f"/preview/{session.id}/", HTTP_CONNECTION="Upgrade", HTTP_UPGRADE="websocket")
    post = client.post(f"/preview/{session.id}/api/form", {"a": "1"})
    assert "instance=e784079b449483" in upgrade["fly-replay"]
    assert "instance=e784079b449483" in post["fly-replay"]


def test_an_ended_session_gets_a_clear_410_page_and_no_replay(client: Client) -> None:
    session = session_on("fly", status=SessionStatus.ENDED)
    response = client.get(f"/preview/{session.id}/")
    assert response.status_code == 410
    assert "fly-replay" not in response
    assert b"This preview has ended" in response.content and b"Ended by an operator" in response.content


def test_an_unknown_session_is_a_404_page_and_a_booting_one_a_503_that_retries(client: Client) -> None:
    unknown = client.get(f"/preview/{uuid.uuid4()}/")
    booting = client.get(f"/preview/{session_on('fly', state='starting').id}/")
    assert (unknown.status_code, booting.status_code) == (404, 503)
    assert "fly-replay" not in unknown and "fly-replay" not in booting
    assert booting["Retry-After"] == "2"


def test_a_local_preview_redirects_to_the_agents_own_port(client: Client) -> None:
    session = session_on("local")
    response = client.get(f"/preview/{session.id}/index.html?x=1")
    assert (response.status_code, response["Location"]) == (302, "http://127.0.0.1:5173/index.html?x=1")


@override_settings(PREVIEW_HOST_SUFFIX="preview.example.com", ALLOWED_HOSTS=[".preview.example.com", "testserver"])
def test_a_wildcard_preview_host_is_replayed_with_its_path_unchanged(client: Client) -> None:
    session = session_on("fly")
    response = client.get("/assets/main.js", HTTP_HOST=f"{session.id}.preview.example.com")
    assert response["fly-replay"] == "app=previews;instance=e784079b449483"
    assert session.machine is not None
    assert machine_preview_url(session.machine, session) == f"https://{session.id}.preview.example.com/"
    assert client.get("/health").status_code == 200  # other hosts are the orchestrator as usual

"""Preview hosts answer with the preview and nothing else; Fly previews answer nowhere but on their own host.

A preview runs strangers' code: on the orchestrator's origin it would act in a logged-in operator's browser
next to /admin/ and /dashboard/. These tests go through the real middleware chain and ASGI application.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from machines.models import Machine
from machines.services import machine_preview_url
from machines.testing import FLY_PREVIEW_SUFFIX
from machines.testing.fly_fake import FakeFly
from machines.tests.factories import machine_with_history
from sessions import services, tasks
from sessions.models import PreviewSession, SessionStatus
from velocity.asgi import application
from velocity.auth import issue_token
from velocity.testing import alogin_cookie

ORCHESTRATOR_PATHS = [
    "/admin/",
    "/dashboard/",
    "/api/v1/sessions/",
    "/metrics",
    "/realtime/v1/api/broadcast",
    "/health",
]


def live_fly_session() -> PreviewSession:
    at = timezone.now() - timedelta(minutes=1)
    machine = machine_with_history([("created", at), ("started", at)], provider="fly", app="previews")
    return PreviewSession.objects.create(
        user_id=uuid.uuid4(), project_id="p", machine=machine, status=SessionStatus.ACTIVE
    )


def provisioned_through_fly() -> PreviewSession:
    """Create (API) → provision (the fake Fly API) → the agent's ready event, as in production."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=uuid.uuid4())}")
    session_id = api.post("/api/v1/sessions/", {"project_id": "isolation"}, format="json").json()["id"]
    assert tasks.provision_session(session_id).endswith("started")
    machine = Machine.objects.get(sessions__id=session_id)
    assert services.session_handle_agent_event(machine=machine, event={"type": "ready"}, now=timezone.now()) == (
        "activated"
    )
    return PreviewSession.objects.select_related("machine").get(id=session_id)


@pytest.mark.django_db
def test_a_fly_preview_url_is_its_own_host_and_only_that_host_replays_it(fly_api: FakeFly, client: Client) -> None:
    session = provisioned_through_fly()
    host = f"{session.id}.{FLY_PREVIEW_SUFFIX}"
    assert session.preview_url == f"https://{host}/"
    assert session.machine is not None
    replayed = client.get("/src/App.tsx?import", HTTP_HOST=host)
    assert replayed.status_code == 200
    assert replayed["fly-replay"] == f"app=previews;instance={session.machine.provider_machine_id}"
    by_path = client.get(f"/preview/{session.id}/src/App.tsx")
    assert (by_path.status_code, "fly-replay" in by_path) == (404, False)
    assert f"https://{host}/".encode() in by_path.content


@pytest.mark.django_db
@pytest.mark.parametrize("path", ORCHESTRATOR_PATHS)
def test_the_orchestrators_pages_are_404_on_any_preview_host(fly_api: FakeFly, staff_client: Client, path: str) -> None:
    hosts = [f"{uuid.uuid4()}.{FLY_PREVIEW_SUFFIX}", f"admin.{FLY_PREVIEW_SUFFIX}", FLY_PREVIEW_SUFFIX]
    hosts.append(f"{uuid.uuid4()}.{FLY_PREVIEW_SUFFIX.upper()}.")  # the same host spelled otherwise
    for host in hosts:
        response = staff_client.get(path, HTTP_HOST=host)
        assert response.status_code == 404, host
        assert b"No such preview" in response.content and b"Velocity operations" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("path", ORCHESTRATOR_PATHS)
def test_on_a_live_previews_host_every_path_is_the_previews_own(
    fly_api: FakeFly, staff_client: Client, path: str
) -> None:
    session = live_fly_session()
    response = staff_client.get(path, HTTP_HOST=f"{session.id}.{FLY_PREVIEW_SUFFIX}")
    assert (response.status_code, response.content) == (200, b"")
    assert response["fly-replay"].startswith("app=previews;instance=")
    assert "Set-Cookie" not in response and "csrftoken" not in response.cookies


@pytest.mark.django_db
def test_under_fly_the_path_form_is_refused_for_any_session(fly_api: FakeFly, client: Client) -> None:
    for session_id in (live_fly_session().id, uuid.uuid4()):
        response = client.post(f"/preview/{session_id}/api/form", {"a": "1"})
        assert response.status_code == 404 and "fly-replay" not in response
        assert b"This preview lives on its own host" in response.content


@pytest.mark.django_db
def test_a_fly_machine_is_never_replayed_by_path_even_under_the_local_provider(client: Client) -> None:
    session = live_fly_session()
    response = client.get(f"/preview/{session.id}/")
    assert response.status_code == 404 and "fly-replay" not in response


@pytest.mark.django_db
def test_a_fly_preview_url_without_a_suffix_is_refused_not_put_on_the_orchestrator(fly_api: FakeFly) -> None:
    session = live_fly_session()
    assert session.machine is not None
    with override_settings(PREVIEW_HOST_SUFFIX=""), pytest.raises(ImproperlyConfigured, match=r"velocity\.E009"):
        machine_preview_url(session.machine, session)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(path: str, host: str, cookie: bytes) -> bool:
        communicator = WebsocketCommunicator(application, path, headers=[(b"host", host.encode()), (b"cookie", cookie)])
        opened.append(communicator)
        connected, _ = await communicator.connect()
        return bool(connected)

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@override_settings(PREVIEW_HOST_SUFFIX=FLY_PREVIEW_SUFFIX)
async def test_no_websocket_of_the_orchestrator_answers_on_a_preview_host(connect: Callable[..., Any]) -> None:
    cookie = await alogin_cookie(is_staff=True)
    preview_host = f"{uuid.uuid4()}.{FLY_PREVIEW_SUFFIX}:443"
    assert await connect("/ws/ops/", "velocity.example.com", cookie) is True  # the same operator, at home
    assert await connect("/ws/ops/", preview_host, cookie) is False
    assert await connect("/realtime/v1/websocket?vsn=1.0.0", preview_host, cookie) is False

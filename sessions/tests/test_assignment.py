"""GET /api/v1/agent/assignment/: a warm machine's agent learns its project once a session claims it."""

import threading
import time
import uuid
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from machines.models import Machine
from machines.services import machine_prepare
from sessions.models import PreviewSession, SessionStatus
from velocity.auth import realtime_audiences, verify_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def warm() -> tuple[Machine, str]:
    machine, spec = machine_prepare(session=None, memory_mb=512)
    return machine, spec.env["MACHINE_TOKEN"]


def test_an_unassigned_machine_gets_204(api: APIClient, warm: tuple[Machine, str]) -> None:
    _, token = warm
    response = api.get("/api/v1/agent/assignment/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 204


def test_a_claimed_machine_gets_its_project_session_and_a_realtime_key_for_that_project(
    api: APIClient, warm: tuple[Machine, str]
) -> None:
    machine, token = warm
    session = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="proj-7", machine=machine)
    response = api.get("/api/v1/agent/assignment/", HTTP_AUTHORIZATION=f"Bearer {token}")
    body = response.json()
    assert response.status_code == 200
    assert (body["project_id"], body["session_id"]) == ("proj-7", str(session.id))
    key = verify_token(body["realtime_key"], audiences=realtime_audiences())
    assert (key.agent_project, key.agent_machine) == ("proj-7", str(machine.id))
    refused = api.get("/api/v1/sessions/", HTTP_AUTHORIZATION=f"Bearer {body['realtime_key']}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "auth.bad_audience")


def test_an_ended_sessions_machine_is_unassigned_and_a_bad_token_is_refused(
    api: APIClient, warm: tuple[Machine, str]
) -> None:
    machine, token = warm
    PreviewSession.objects.create(
        user_id=uuid.uuid4(), project_id="p", machine=machine, status=SessionStatus.ENDED, ended_at=timezone.now()
    )
    assert api.get("/api/v1/agent/assignment/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 204
    assert api.get("/api/v1/agent/assignment/", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    bad_wait = api.get("/api/v1/agent/assignment/?wait=soon", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bad_wait.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answers_as_soon_as_the_machine_is_claimed(api: APIClient, warm: tuple[Machine, str]) -> None:
    machine, token = warm

    def claim_later() -> None:
        time.sleep(0.5)
        PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="late", machine=machine)
        connection.close()

    claimer = threading.Thread(target=claim_later)
    started = time.monotonic()
    claimer.start()
    response = api.get("/api/v1/agent/assignment/?wait=10", HTTP_AUTHORIZATION=f"Bearer {token}")
    claimer.join()
    assert response.status_code == 200 and response.json()["project_id"] == "late"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", "1e999", "soon"])
def test_a_wait_that_is_not_a_finite_number_is_refused_at_once(
    api: APIClient, warm: tuple[Machine, str], wait: str
) -> None:
    _, token = warm
    started = time.monotonic()
    response = api.get(f"/api/v1/agent/assignment/?wait={wait}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request.invalid"
    assert time.monotonic() - started < 5


def test_a_huge_finite_wait_is_held_to_the_maximum() -> None:
    from sessions.api import ASSIGNMENT_MAX_WAIT_SECONDS, _wait_seconds

    request = mock.Mock(query_params={"wait": "1e300"})
    assert _wait_seconds(request) == ASSIGNMENT_MAX_WAIT_SECONDS

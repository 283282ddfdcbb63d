"""CORS for browser editors on their own origin: the REST API and the REST broadcast, nothing else.

In process through Django's test client (the middleware stack as deployed); the browser's own view of it
is `test_cors_browser.py`.
"""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from velocity.auth import issue_token

pytestmark = pytest.mark.django_db

EDITOR = "https://editor.example.com"
SESSIONS = "/api/v1/sessions/"
BROADCAST = "/realtime/v1/api/broadcast"


@pytest.fixture(autouse=True)
def editor_allowed(settings) -> None:
    settings.CORS_ALLOWED_ORIGINS = [EDITOR]
    settings.CORS_ALLOW_ALL_ORIGINS = False


def preflight(path: str, origin: str = EDITOR, method: str = "POST"):
    headers = {"origin": origin, "access-control-request-method": method}
    return Client().options(path, headers={**headers, "access-control-request-headers": "authorization"})


def test_a_preflight_is_answered_before_authentication() -> None:
    response = preflight(SESSIONS)
    assert response.status_code == 200  # never 401: the preflight carries no token
    assert response["Access-Control-Allow-Origin"] == EDITOR
    assert response["Access-Control-Allow-Headers"] == "authorization, content-type, apikey, x-client-info"
    assert "DELETE" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_an_answer_and_an_error_carry_the_origin_and_expose_retry_after() -> None:
    token = issue_token(sub=uuid.uuid4())
    listed = Client().get(SESSIONS, headers={"origin": EDITOR, "authorization": f"Bearer {token}"})
    refused = Client().get(SESSIONS, headers={"origin": EDITOR})
    assert (listed.status_code, refused.status_code) == (200, 401)
    for response in (listed, refused):
        assert response["Access-Control-Allow-Origin"] == EDITOR
        assert response["Access-Control-Expose-Headers"] == "retry-after"
        assert "origin" in response["Vary"].lower()


def test_an_origin_not_listed_gets_no_access_control_headers() -> None:
    response = preflight(SESSIONS, origin="https://evil.example.net")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Origin" not in Client().get(SESSIONS, headers={"origin": "https://evil.example.net"})


def test_the_rest_broadcast_follows_the_same_setting() -> None:
    assert preflight(BROADCAST)["Access-Control-Allow-Origin"] == EDITOR
    assert preflight(f"{BROADCAST}/project%3Ap/events/e")["Access-Control-Allow-Origin"] == EDITOR
    assert "Access-Control-Allow-Origin" not in preflight(BROADCAST, origin="https://evil.example.net")


def test_other_paths_have_no_cors(settings) -> None:
    settings.CORS_ALLOW_ALL_ORIGINS = True
    for path in ("/health", "/dashboard/", "/realtime/v1/internal/relay"):
        assert "Access-Control-Allow-Origin" not in Client().get(path, headers={"origin": EDITOR}), path


def test_every_origin_may_be_allowed_without_credentials(settings) -> None:
    settings.CORS_ALLOW_ALL_ORIGINS = True
    response = preflight(SESSIONS, origin="https://anywhere.example.org")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


def test_a_preview_hosts_preflight_is_the_previews_own(settings) -> None:
    settings.PREVIEW_HOST_SUFFIX = "example-previews.dev"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".example-previews.dev"]
    headers = {
        "origin": EDITOR,
        "access-control-request-method": "POST",
        "host": f"{uuid.uuid4()}.example-previews.dev",
    }
    response = Client().options(SESSIONS, headers=headers)
    assert "Access-Control-Allow-Origin" not in response

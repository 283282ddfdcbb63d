import time
import uuid
from collections.abc import Callable
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from sessions.models import PreviewSession, Quota, SessionStatus
from sessions.tests.conftest import error_code

pytestmark = pytest.mark.django_db
SOME_ID = "00000000-0000-4000-8000-000000000001"
ENDPOINTS = [
    ("get", "/api/v1/sessions/"),
    ("post", "/api/v1/sessions/"),
    ("get", f"/api/v1/sessions/{SOME_ID}/"),
    ("delete", f"/api/v1/sessions/{SOME_ID}/"),
    ("post", f"/api/v1/sessions/{SOME_ID}/heartbeat/"),
    ("post", f"/api/v1/sessions/{SOME_ID}/extend/"),
    ("get", "/api/v1/quota/"),
    ("get", f"/api/v1/quotas/{SOME_ID}/"),
    ("put", f"/api/v1/quotas/{SOME_ID}/"),
]


def bad_tokens() -> dict[str, str]:
    secret = settings.SUPABASE_JWT_SECRET
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "exp": int(time.time()) + 60}
    return {
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 60}, secret, algorithm="HS256"),
        "forged": jwt.encode(claims, "not-the-secret-but-long-enough-0123456789abcdef", algorithm="HS256"),
        "anon": jwt.encode({**claims, "role": "anon", "sub": None}, secret, algorithm="HS256"),
        "anon-with-sub": jwt.encode({**claims, "role": "anon"}, secret, algorithm="HS256"),
        "garbage": "abc",
    }


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_endpoint_refuses_a_missing_token_with_401(api: APIClient, method: str, url: str) -> None:
    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == 401
    assert error_code(response) == "auth.required"


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize("kind", ["expired", "forged", "anon", "anon-with-sub", "garbage"])
def test_every_endpoint_refuses_a_bad_token_with_401(api: APIClient, method: str, url: str, kind: str) -> None:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {bad_tokens()[kind]}")
    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == 401
    assert error_code(response).startswith("auth.")
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_create_queues_a_session_and_a_repeat_returns_it(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    client = as_user(user)
    first = client.post("/api/v1/sessions/", {"project_id": "proj-1"}, format="json")
    again = client.post("/api/v1/sessions/", {"project_id": "proj-1"}, format="json")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    body = first.json()
    assert (body["status"], body["user_id"], body["project_id"]) == ("creating", str(user), "proj-1")
    assert body["expires_at"] and body["queued_at"]


@pytest.mark.parametrize("project_id", ["", "a" * 201, "../etc", ".", "..", "...", "white space", "emoji-🙂", None, 12])
def test_create_refuses_a_bad_project_id_and_writes_nothing(
    as_user: Callable[..., APIClient], project_id: object
) -> None:
    response = as_user().post("/api/v1/sessions/", {"project_id": project_id}, format="json")
    assert response.status_code == 400
    assert error_code(response) == "request.invalid"
    assert "project_id" in response.json()["error"]["details"]["fields"]
    assert PreviewSession.objects.count() == 0


def test_create_accepts_the_full_project_id_alphabet(as_user: Callable[..., APIClient]) -> None:
    response = as_user().post("/api/v1/sessions/", {"project_id": "Ab9-_.:" + "x" * 193}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("project_id", [".a", "a..", "..-"])
def test_create_accepts_dots_beside_other_characters(as_user: Callable[..., APIClient], project_id: str) -> None:
    response = as_user().post("/api/v1/sessions/", {"project_id": project_id}, format="json")
    assert response.status_code == 201


def test_a_malformed_body_is_a_400_in_the_error_shape(as_user: Callable[..., APIClient]) -> None:
    response = as_user().post("/api/v1/sessions/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.json()


def test_another_users_session_answers_404_everywhere(as_user: Callable[..., APIClient]) -> None:
    owner = as_user()
    session_id = owner.post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"]
    stranger = as_user()
    for method, url in [("get", ""), ("post", "heartbeat/"), ("post", "extend/"), ("delete", "")]:
        response = getattr(stranger, method)(f"/api/v1/sessions/{session_id}/{url}", {"minutes": 5}, format="json")
        assert response.status_code == 404
        assert error_code(response) == "not_found"
    assert PreviewSession.objects.get(id=session_id).status == SessionStatus.CREATING


def test_list_shows_only_own_sessions_with_filters_and_pages(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, max_concurrent_sessions=5)
    as_user().post("/api/v1/sessions/", {"project_id": "someone-elses"}, format="json")
    client = as_user(user)
    for project in ("a", "b", "c"):
        assert client.post("/api/v1/sessions/", {"project_id": project}, format="json").status_code == 201
    page = client.get("/api/v1/sessions/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert [s["project_id"] for s in client.get("/api/v1/sessions/?project_id=a").json()["results"]] == ["a"]
    assert client.get("/api/v1/sessions/?status=ended").json()["count"] == 0


def test_the_service_role_sees_and_ends_every_session(as_user: Callable[..., APIClient]) -> None:
    session_id = as_user().post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"]
    service = as_user(role="service_role")
    assert service.get("/api/v1/sessions/").json()["count"] == 1
    assert service.get(f"/api/v1/sessions/{session_id}/").status_code == 200
    assert service.delete(f"/api/v1/sessions/{session_id}/").json()["status"] == "ended"


def test_end_marks_the_session_ended_by_the_user_and_is_idempotent(as_user: Callable[..., APIClient]) -> None:
    client = as_user()
    session_id = client.post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"]
    first = client.delete(f"/api/v1/sessions/{session_id}/")
    second = client.delete(f"/api/v1/sessions/{session_id}/")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["status"], first.json()["end_reason"]) == ("ended", "user")
    assert second.json()["ended_at"] == first.json()["ended_at"]


def test_heartbeat_records_activity_and_refuses_an_ended_session(as_user: Callable[..., APIClient]) -> None:
    client = as_user()
    session_id = client.post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"]
    PreviewSession.objects.filter(id=session_id).update(last_activity_at=None)
    beat = client.post(f"/api/v1/sessions/{session_id}/heartbeat/")
    assert beat.status_code == 200 and beat.json()["last_activity_source"] == "heartbeat"
    client.delete(f"/api/v1/sessions/{session_id}/")
    refused = client.post(f"/api/v1/sessions/{session_id}/heartbeat/")
    assert (refused.status_code, error_code(refused)) == (409, "session.ended")


def test_a_heartbeat_within_five_seconds_of_the_last_says_it_was_not_recorded(
    as_user: Callable[..., APIClient],
) -> None:
    client = as_user()
    session_id = client.post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"]
    PreviewSession.objects.filter(id=session_id).update(last_activity_at=None)
    first = client.post(f"/api/v1/sessions/{session_id}/heartbeat/")
    second = client.post(f"/api/v1/sessions/{session_id}/heartbeat/")
    assert (first.status_code, first.json()["recorded"]) == (200, True)
    assert (second.status_code, second.json()["recorded"]) == (200, False)
    assert second.json()["last_activity_at"] == first.json()["last_activity_at"]


def test_unknown_api_urls_answer_json_404(as_user: Callable[..., APIClient]) -> None:
    response = as_user().get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_creates_are_throttled_with_retry_after(as_user: Callable[..., APIClient]) -> None:
    cache.clear()
    client = as_user()
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "sessions_create": "2/min"}
    with mock.patch.object(SimpleRateThrottle, "THROTTLE_RATES", rates):
        responses = [client.post("/api/v1/sessions/", {"project_id": f"p{i}"}, format="json") for i in range(3)]
    cache.clear()
    assert [r.status_code for r in responses[:2]] == [201, 201]
    assert responses[2].status_code == 429
    assert error_code(responses[2]) == "rate_limited"
    assert int(responses[2]["Retry-After"]) > 0
    assert responses[2].json()["error"]["details"]["retry_after"] > 0


def test_the_openapi_schema_is_served_without_a_token(api: APIClient) -> None:
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/sessions/" in response.json()["paths"]


@pytest.mark.parametrize("query", ["project_id=%00%C3%B3", "status=active%00"])
def test_a_nul_in_a_list_filter_matches_nothing_instead_of_failing(
    as_user: Callable[..., APIClient], query: str
) -> None:
    client = as_user()
    client.post("/api/v1/sessions/", {"project_id": "p"}, format="json")
    response = client.get(f"/api/v1/sessions/?{query}")
    assert response.status_code == 200 and response.json()["count"] == 0

"""The served OpenAPI schema against the real API: every response it documents is provoked through the whole
application with real tokens, and every answer (status, content type, headers, body) is validated against
the schema by openapi-core. A response the schema does not list fails its case; a documented one that no
case provokes fails the coverage test. So the schema cannot drift from the API in either direction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from pytest_django.fixtures import SettingsWrapper
from rest_framework.throttling import SimpleRateThrottle

from machines.services import machine_prepare
from sessions.access import ProjectAccessUnavailable
from sessions.models import PreviewSession, Quota, SessionStatus
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db
API = "/api/v1"
S, P, M, Q = f"{API}/sessions/", f"{API}/projects/", f"{API}/agent/", f"{API}/quota"
PO = f"{API}/policy/"
# Paths whose cases live in their own app's tests (a layer above may not be imported here).
ELSEWHERE = (f"{API}/webhooks/",)  # webhooks/tests/test_schema_conformance.py


@dataclass(frozen=True)
class Case:
    """One request and the status it must get: ``who`` names a token of ``World``, ``path`` is formatted
    with the world's ids, ``body`` is JSON unless it is ``bytes`` (sent as ``content_type``)."""

    method: str
    template: str  # the schema's path
    path: str
    status: int
    who: str = "owner"
    body: Any = None
    content_type: str = "application/json"

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {self.status} as {self.who}"


PARAMETERS = {"sessions": "{session_id}", "projects": "{project_id}", "quotas": "{user_id}", "members": "{user_id}"}


def case(method: str, path: str, status: int, who: str = "owner", body: Any = None, **kw: Any) -> Case:
    """A ``Case`` whose schema path is ``path`` with each segment after a collection made its parameter."""
    parts = path.split("?")[0].split("/")
    template = "/".join(
        PARAMETERS[parts[i - 1]] if part and parts[i - 1] in PARAMETERS else part for i, part in enumerate(parts)
    )
    return Case(method, template, path, status, who, body, **kw)


OWNER_BODY = {"owner_id": "{owner_id}"}
MEMBER_BODY = {"user_id": "{stranger_id}", "role": "viewer"}
LIMITS = {
    "max_concurrent_sessions": 3,
    "max_session_seconds": 3600,
    "monthly_machine_seconds": 36000,
    "monthly_budget_usd": "9.50",
    "max_memory_mb": 1024,
}
NOT_JSON = b"project_id=x"
MALFORMED = b'{"project_id": '

CASES = [
    case("get", S, 200),
    case("post", S, 201, body={"project_id": "fresh-project"}),
    case("post", S, 200, body={"project_id": "{project}"}),
    case("post", S, 400, body={"project_id": ".."}),
    case("post", S, 400, body=MALFORMED),
    case("post", S, 400, who="service_nosub", body={"project_id": "x"}),
    case("post", S, 403, who="stranger", body={"project_id": "{project}"}),
    case("post", S, 429, who="limited", body={"project_id": "another-project"}),
    case("post", S, 503, who="stranger", body={"project_id": "unavailable"}),
    case("post", S, 413, body={"project_id": "x" * 300}),
    case("post", S, 415, body=NOT_JSON, content_type="application/x-www-form-urlencoded"),
    case("get", S + "{live}/", 200),
    case("get", S + "{live}/", 404, who="stranger"),
    case("delete", S + "{live}/", 200),
    case("delete", S + "{ended}/", 200),
    case("delete", S + "{missing}/", 404),
    case("post", S + "{live}/heartbeat/", 200),
    case("post", S + "{ended}/heartbeat/", 409),
    case("post", S + "{live}/heartbeat/", 404, who="stranger"),
    case("post", S + "{live}/extend/", 200, body={"minutes": 5}),
    case("post", S + "{live}/extend/", 400, body={"minutes": 0}),
    case("post", S + "{live}/extend/", 404, who="stranger", body={"minutes": 5}),
    case("post", S + "{ended}/extend/", 409, body={"minutes": 5}),
    case("post", S + "{live}/extend/", 409, body={"minutes": 600}),
    case("post", S + "{live}/extend/", 413, body={"minutes": 5, "pad": "x" * 300}),
    case("post", S + "{live}/extend/", 415, body=NOT_JSON, content_type="text/plain"),
    case("get", Q + "/", 200),
    case("get", Q + "/", 400, who="service_nosub"),
    case("get", Q + "s/{stranger_id}/", 200, who="service"),
    case("get", Q + "s/{stranger_id}/", 403),
    case("put", Q + "s/{owner_id}/", 201, who="service", body=LIMITS),
    case("put", Q + "s/{stranger_id}/", 200, who="service", body=LIMITS),
    case("put", Q + "s/{stranger_id}/", 400, who="service", body={**LIMITS, "max_memory_mb": "lots"}),
    case("put", Q + "s/{stranger_id}/", 403, body=LIMITS),
    case("get", Q + "s/not-a-uuid/", 404, who="service"),
    case("put", Q + "s/not-a-uuid/", 404, who="service", body=LIMITS),
    case("put", Q + "s/{stranger_id}/", 413, who="service", body={**LIMITS, "pad": "x" * 300}),
    case("put", Q + "s/{stranger_id}/", 415, who="service", body=NOT_JSON, content_type="text/plain"),
    case("get", P, 200),
    case("get", P + "?owner_id=nobody", 400),
    case("get", P + "{project}/", 200),
    case("get", P + "{bad_project}/", 400),
    case("get", P + "{project}/", 404, who="stranger"),
    case("put", P + "{project}/", 200, who="service", body=OWNER_BODY),
    case("put", P + "new-project/", 201, who="service", body=OWNER_BODY),
    case("put", P + "{project}/", 400, who="service", body={"owner_id": "someone"}),
    case("put", P + "{project}/", 403, body=OWNER_BODY),
    case("put", P + "{project}/", 413, who="service", body={"owner_id": "x" * 300}),
    case("put", P + "{project}/", 415, who="service", body=NOT_JSON, content_type="text/plain"),
    case("get", P + "{project}/members/", 200),
    case("get", P + "{bad_project}/members/", 400),
    case("get", P + "{project}/members/", 404, who="stranger"),
    case("post", P + "{project}/members/", 200, who="service", body=MEMBER_BODY),
    case("post", P + "{project}/members/", 400, who="service", body={"user_id": "{stranger_id}", "role": "boss"}),
    case("post", P + "{project}/members/", 403, body=MEMBER_BODY),
    case("post", P + "unknown-project/members/", 404, who="service", body=MEMBER_BODY),
    case("post", P + "{project}/members/", 409, who="service", body={"user_id": "{owner_id}"}),
    case("post", P + "{project}/members/", 413, who="service", body={"user_id": "x" * 300}),
    case("post", P + "{project}/members/", 415, who="service", body=NOT_JSON, content_type="text/plain"),
    case("delete", P + "{project}/members/{member}/", 204, who="service"),
    case("delete", P + "{bad_project}/members/{member}/", 400, who="service"),
    case("delete", P + "{project}/members/{member}/", 403),
    case("delete", P + "{project}/members/{stranger_id}/", 404, who="service"),
    case("post", M + "events/", 202, who="machine", body={"type": "activity", "source": "editor"}),
    case("post", M + "events/", 400, who="machine", body={"type": "party"}),
    case("post", M + "events/", 413, who="machine", body={"type": "x" * 300}),
    case("post", M + "events/", 415, who="machine", body=NOT_JSON, content_type="text/plain"),
    case("get", M + "assignment/", 200, who="machine"),
    case("get", M + "assignment/", 204, who="warm_machine"),
    case("get", M + "assignment/?wait=nan", 400, who="machine"),
    case("get", PO, 200, who="service"),
    case("get", PO, 403),
    *(
        c
        for action in ("dry-run/", "apply/")
        for c in (
            case("post", PO + action, 200, who="service", body={"idle_timeout_minutes": 15}),
            case("post", PO + action, 400, who="service", body={"idle_timeout_minutes": 0}),
            case("post", PO + action, 403, body={"idle_timeout_minutes": 15}),
            case("post", PO + action, 413, who="service", body={"ttl_minutes": 60, "pad": "x" * 300}),
            case("post", PO + action, 415, who="service", body=NOT_JSON, content_type="text/plain"),
        )
    ),
]


def _every_operation() -> list[tuple[str, str]]:
    """(method, schema path) of every operation, read from the cases' own paths (checked against the
    schema by ``test_every_documented_response_has_a_case``)."""
    return sorted({(c.method, c.template) for c in CASES})


def _concrete(template: str) -> str:
    """A schema path with the world's placeholders: an existing session, project and member."""
    return (
        template.replace("{session_id}", "{live}").replace("{project_id}", "{project}").replace("{user_id}", "{member}")
    )


def _auth_cases() -> list[Case]:
    """401 and 429 apply to every operation: no token (or no machine token), and a throttle at zero."""
    cases = []
    for method, template in _every_operation():
        who = "machine" if template.startswith(M) else "service"
        cases.append(Case(method, template, _concrete(template), 401, who="nobody"))
        cases.append(Case(method, template, _concrete(template), 429, who=who, body="throttled"))
    return cases


ALL_CASES = CASES + _auth_cases()


@dataclass
class World:
    ids: dict[str, str]
    tokens: dict[str, str]

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**self.ids)
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        served = Client().get(f"{API}/schema/?format=json")
    assert served.status_code == 200
    return dict(json.loads(served.content))


@pytest.fixture(scope="module")
def openapi(schema: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(schema)


@pytest.fixture
def world() -> Iterator[World]:
    owner, stranger, member = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=owner)}")
    live = token.post(S, {"project_id": "the-project"}, content_type="application/json").json()
    ended = PreviewSession.objects.create(
        user_id=owner, project_id="the-project", status=SessionStatus.ENDED, ended_at=timezone.now()
    )
    service = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=None, role='service_role')}")
    service.post(f"{P}the-project/members/", {"user_id": str(member)}, content_type="application/json")
    Quota.objects.create(user_id=stranger, max_concurrent_sessions=0)
    busy, busy_spec = machine_prepare(session=None, memory_mb=512)
    # An hour left of the quota's two: room for an extension.
    PreviewSession.objects.filter(pk=live["id"]).update(machine=busy, expires_at=timezone.now() + timedelta(hours=1))
    _, warm_spec = machine_prepare(session=None, memory_mb=512)
    ids = {"live": live["id"], "ended": str(ended.id), "missing": str(uuid.uuid4()), "project": "the-project"}
    ids |= {"bad_project": "not!an-id", "owner_id": str(owner), "stranger_id": str(stranger), "member": str(member)}
    tokens = {
        "owner": issue_token(sub=owner),
        "stranger": issue_token(sub=stranger),
        "limited": issue_token(sub=stranger),
        "service": issue_token(sub=uuid.uuid4(), role="service_role"),
        "service_nosub": issue_token(sub=None, role="service_role"),
        "machine": busy_spec.env["MACHINE_TOKEN"],
        "warm_machine": warm_spec.env["MACHINE_TOKEN"],
    }
    cache.clear()
    yield World(ids, tokens)
    cache.clear()


def _call(world: World, case: Case) -> tuple[MockRequest, Any]:
    path = world.fill(case.path)
    body = world.fill(case.body)
    data = body if isinstance(body, bytes) else b"" if body in (None, "throttled") else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {world.tokens[case.who]}"} if case.who in world.tokens else {}
    client = Client(headers=headers)
    response = client.generic(case.method.upper(), path, data, content_type=case.content_type)
    route, _, query = path.partition("?")
    args = dict(item.split("=", 1) for item in query.split("&")) if query else None
    request = MockRequest(
        "http://testserver", case.method, route, args=args, headers=headers, data=data, content_type=case.content_type
    )
    return request, response


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_each_documented_response_is_what_the_api_answers(
    case: Case, world: World, openapi: OpenAPI, settings: SettingsWrapper
) -> None:
    settings.API_MAX_BODY_BYTES = 200  # the 413 cases send a little more
    settings.PROJECT_ACCESS_BACKEND = "supabase" if case.status == 503 else "registry"
    rates = {scope: "0/min" for scope in SimpleRateThrottle.THROTTLE_RATES} if case.body == "throttled" else {}
    # A fake for a fault SQLite cannot cause: the frontend's projects table (PostgreSQL only) unreachable.
    unavailable = mock.patch("sessions.access.supabase_project_has_access", side_effect=ProjectAccessUnavailable)
    throttles = mock.patch.object(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **rates})
    with throttles, unavailable:
        request, response = _call(world, case)
    assert response.status_code == case.status, response.content[:300]
    content_type = response.get("Content-Type", "application/json")
    answer = MockResponse(response.content, case.status, dict(response.items()), content_type.split(";")[0])
    openapi.validate_response(request, answer)
    if case.status < 300:
        openapi.validate_request(request)


def test_every_documented_response_has_a_case(schema: dict[str, Any]) -> None:
    documented = {
        (method, path, int(status))
        for path, operations in schema["paths"].items()
        if not path.startswith(ELSEWHERE)
        for method, operation in operations.items()
        for status in operation["responses"]
    }
    provoked = {(c.method, c.template, c.status) for c in ALL_CASES}
    assert documented - provoked == set(), "documented, never provoked"
    assert provoked - documented == set(), "provoked, not documented"


@pytest.mark.parametrize(("method", "template"), _every_operation())
def test_a_method_the_schema_does_not_list_is_405_in_the_error_shape(
    method: str, template: str, world: World, schema: dict[str, Any]
) -> None:
    unlisted = next(m for m in ("patch", "put", "delete", "post", "get") if m not in schema["paths"][template])
    path = world.fill(_concrete(template))
    who = "machine" if template.startswith(M) else "service"
    response = Client(headers={"Authorization": f"Bearer {world.tokens[who]}"}).generic(unlisted.upper(), path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "request.method_not_allowed"

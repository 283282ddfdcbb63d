"""The webhooks API against the served OpenAPI schema, with the machinery of the sessions API's conformance
suite: every documented response of every webhooks operation is provoked through the whole application with
real tokens and validated by openapi-core; none is documented that no case provokes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from openapi_core import OpenAPI
from openapi_core.testing import MockResponse
from pytest_django.fixtures import SettingsWrapper
from rest_framework.throttling import SimpleRateThrottle

from sessions.tests.test_schema_conformance import MALFORMED, NOT_JSON, Case, World, _call, openapi, schema
from velocity.auth import issue_token
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookMessage

__all__ = ["openapi", "schema"]
pytestmark = pytest.mark.django_db
E, D = "/api/v1/webhooks/endpoints/", "/api/v1/webhooks/deliveries/"
EP, DP = E + "{endpoint_id}/", D + "{delivery_id}/redeliver/"
URL = {"url": "https://hooks.example.com/velocity"}
CASES = [
    Case("get", E, E, 200, "service"),
    Case("get", E, E, 403, "stranger"),
    Case("post", E, E, 201, "service", URL),
    Case("post", E, E, 400, "service", {"url": "not a url"}),
    Case("post", E, E, 400, "service", MALFORMED),
    Case("post", E, E, 403, "stranger", URL),
    Case("post", E, E, 413, "service", {"url": "https://x.example.com/" + "x" * 300}),
    Case("post", E, E, 415, "service", NOT_JSON, content_type="text/plain"),
    Case("get", EP, E + "{endpoint}/", 200, "service"),
    Case("get", EP, E + "{endpoint}/", 403, "stranger"),
    Case("get", EP, E + "{missing}/", 404, "service"),
    Case("patch", EP, E + "{endpoint}/", 200, "service", {"description": "billing"}),
    Case("patch", EP, E + "{endpoint}/", 400, "service", {"event_types": ["session.exploded"]}),
    Case("patch", EP, E + "{endpoint}/", 403, "stranger", {"enabled": False}),
    Case("patch", EP, E + "{missing}/", 404, "service", {"enabled": False}),
    Case("patch", EP, E + "{endpoint}/", 413, "service", {"description": "x" * 300}),
    Case("patch", EP, E + "{endpoint}/", 415, "service", NOT_JSON, content_type="text/plain"),
    Case("delete", EP, E + "{endpoint}/", 204, "service"),
    Case("delete", EP, E + "{endpoint}/", 403, "stranger"),
    Case("delete", EP, E + "{missing}/", 404, "service"),
    Case("post", EP + "rotate-secret/", E + "{endpoint}/rotate-secret/", 200, "service"),
    Case("post", EP + "rotate-secret/", E + "{endpoint}/rotate-secret/", 403, "stranger"),
    Case("post", EP + "rotate-secret/", E + "{missing}/rotate-secret/", 404, "service"),
    Case("get", D, D + "?endpoint={endpoint}&status=dead", 200, "service"),
    Case("get", D, D + "?endpoint=nope", 400, "service"),
    Case("get", D, D, 403, "stranger"),
    Case("get", D, D + "?endpoint={missing}", 404, "service"),
    Case("post", DP, D + "{finished}/redeliver/", 202, "service"),
    Case("post", DP, D + "{finished}/redeliver/", 403, "stranger"),
    Case("post", DP, D + "{missing}/redeliver/", 404, "service"),
    Case("post", DP, D + "{open}/redeliver/", 409, "service"),
]
OPERATIONS = sorted({(c.method, c.template, c.path.split("?")[0]) for c in CASES if c.status < 300})
ALL_CASES = CASES + [
    Case(method, template, path, status, who, body)
    for method, template, path in OPERATIONS
    for status, who, body in ((401, "nobody", None), (429, "service", "throttled"))
]


@pytest.fixture
def world() -> Iterator[World]:
    """An endpoint with a finished (dead) delivery and an open one."""
    endpoint = services.endpoint_create(url=URL["url"], event_types=[], actor=None, actor_label="test")
    message = WebhookMessage.objects.create(id="msg_world", event_type="session.ended", payload={"type": "x"})
    finished = WebhookDelivery.objects.create(
        endpoint=endpoint, message=message, status=DeliveryStatus.DEAD, attempts=7, last_error="HTTP 500"
    )
    still_open = WebhookDelivery.objects.create(endpoint=endpoint, message=message)
    ids = {"endpoint": str(endpoint.id), "missing": str(uuid.uuid4())}
    ids |= {"finished": str(finished.id), "open": str(still_open.id)}
    tokens = {"service": issue_token(sub=None, role="service_role"), "stranger": issue_token(sub=uuid.uuid4())}
    cache.clear()
    yield World(ids, tokens)
    cache.clear()


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_each_documented_response_is_what_the_api_answers(
    case: Case, world: World, openapi: OpenAPI, settings: SettingsWrapper
) -> None:
    settings.API_MAX_BODY_BYTES = 200  # the 413 cases send a little more
    rates = {scope: "0/min" for scope in SimpleRateThrottle.THROTTLE_RATES} if case.body == "throttled" else {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **rates})
        request, response = _call(world, case)
    assert response.status_code == case.status, response.content[:300]
    content_type = response.get("Content-Type", "application/json")
    answer = MockResponse(response.content, case.status, dict(response.items()), content_type.split(";")[0])
    openapi.validate_response(request, answer)
    if case.status < 300:
        openapi.validate_request(request)


def test_every_documented_webhooks_response_has_a_case(schema: dict[str, Any]) -> None:
    documented = {
        (method, path, int(status))
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/webhooks/")
        for method, operation in operations.items()
        for status in operation["responses"]
    }
    provoked = {(c.method, c.template, c.status) for c in ALL_CASES}
    assert documented - provoked == set(), "documented, never provoked"
    assert provoked - documented == set(), "provoked, not documented"


@pytest.mark.parametrize(("method", "template", "path"), OPERATIONS)
def test_a_method_the_schema_does_not_list_is_405_in_the_error_shape(
    method: str, template: str, path: str, world: World, schema: dict[str, Any]
) -> None:
    unlisted = next(m for m in ("patch", "put", "delete", "post", "get") if m not in schema["paths"][template])
    token = world.tokens["service"]
    response = Client(headers={"Authorization": f"Bearer {token}"}).generic(unlisted.upper(), world.fill(path))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "request.method_not_allowed"

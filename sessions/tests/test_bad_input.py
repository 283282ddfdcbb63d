"""Bodies the API cannot use are 400s in the contract's error shape, never a 500."""

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from sessions.models import PreviewSession
from sessions.tests.conftest import error_code

pytestmark = pytest.mark.django_db

UNUSABLE_JSON = {
    "deep": "[" * 100_000,
    "deep-but-closed": "[" * 500 + "]" * 500,
    "lone-surrogate": '{"project_id": "p", "memory_mb": 512, "x": "\\ud800"}',
    "syntax": "{not json",
}


@pytest.mark.parametrize("body", UNUSABLE_JSON.values(), ids=UNUSABLE_JSON.keys())
def test_an_unusable_json_body_is_a_400_request_malformed(as_user: Callable[..., APIClient], body: str) -> None:
    response = as_user().post("/api/v1/sessions/", body, content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "request.malformed"
    assert PreviewSession.objects.count() == 0


def test_an_escaped_surrogate_pair_is_ordinary_text(as_user: Callable[..., APIClient]) -> None:
    body = '{"project_id": "p", "comment": "\\ud83d\\ude00"}'
    assert as_user().post("/api/v1/sessions/", body, content_type="application/json").status_code == 201

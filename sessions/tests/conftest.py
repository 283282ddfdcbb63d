import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from velocity.auth import issue_token


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def as_user(api: APIClient) -> Callable[..., APIClient]:
    """Authenticate the client as ``user_id`` (a fresh user by default) with the given role."""

    def login(user_id: uuid.UUID | None = None, role: str = "authenticated") -> APIClient:
        token = issue_token(sub=user_id or uuid.uuid4(), role=role)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api

    return login


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])

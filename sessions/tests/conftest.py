import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from machines.providers import get_provider
from velocity.audit import audited
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


@pytest.fixture
def audits() -> Iterator[list[dict[str, Any]]]:
    """What went through the audit door (``velocity.audit``) during the test, in order. The records
    themselves are the dashboard's; this layer only promises to knock once per write."""
    sent: list[dict[str, Any]] = []

    def knock(sender: Any, *, signal: Any, **record: Any) -> None:
        sent.append(record)

    audited.connect(knock, weak=False, dispatch_uid="test-audits")
    yield sent
    audited.disconnect(dispatch_uid="test-audits")


@pytest.fixture
def local_machines(tmp_path: Path, live_server: object) -> Iterator[Path]:
    """The local provider under a temporary var dir, its agents reporting to the live server (no realtime)."""
    root = tmp_path / "var"
    with override_settings(VAR_DIR=root, ORCHESTRATOR_URL=str(live_server), REALTIME_URL="", MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        yield root
        provider = get_provider()
        for machine in provider.list():
            provider.destroy(machine.id)
    get_provider.cache_clear()

"""The rollback flag (seed §8.4): per user, project or everyone, new machine previews or legacy Appetize ones."""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import IntegrityError
from django.test import override_settings
from rest_framework.test import APIClient

from machines.models import Machine
from sessions import services
from sessions.models import FlagScope, PreviewFlag, PreviewSession, PreviewTarget
from sessions.selectors import preview_route_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("appetize")]
APPETIZE = "https://appetize.io/app/velocity-demo?project={project_id}"


@pytest.fixture
def appetize() -> Iterator[None]:
    with override_settings(APPETIZE_APP_URL=APPETIZE):
        yield


def create(client: APIClient, project_id: str = "demo", *, status: int = 201) -> dict[str, Any]:
    """Create a session: 201, or 200 when the user's live session for the project is returned again."""
    response = client.post("/api/v1/sessions/", {"project_id": project_id}, format="json")
    assert response.status_code == status, response.content
    return dict(response.json())


def test_a_user_routed_to_legacy_gets_an_active_appetize_session_and_no_machine(
    as_user: Callable[..., APIClient],
) -> None:
    user = uuid.uuid4()
    services.preview_flag_set(scope=FlagScope.USER, user_id=user, target=PreviewTarget.LEGACY)
    body = create(as_user(user))
    assert (body["status"], body["framework"], body["machine_id"]) == ("active", "legacy", None)
    assert body["preview_url"] == "https://appetize.io/app/velocity-demo?project=demo"
    assert Machine.objects.count() == 0
    assert create(as_user(user), status=200)["id"] == body["id"]  # the live legacy session is returned again


def test_flipping_the_flag_back_ends_the_legacy_session_and_queues_a_machine_preview(
    as_user: Callable[..., APIClient],
) -> None:
    user = uuid.uuid4()
    flag = services.preview_flag_set(scope=FlagScope.USER, user_id=user, target=PreviewTarget.LEGACY)
    legacy = create(as_user(user))
    services.preview_flags_route(flag_ids=[flag.id], target=PreviewTarget.NEW, actor=None, now=flag.updated_at)
    fresh = create(as_user(user))
    assert fresh["id"] != legacy["id"]
    assert (fresh["status"], fresh["preview_url"], fresh["framework"]) == ("creating", "", "")
    old = PreviewSession.objects.get(id=legacy["id"])
    assert (old.status, old.end_reason) == ("ended", "operator")
    assert "switched to new" in old.end_detail


def test_switching_everyone_to_legacy_ends_a_live_machine_session_on_the_next_create(
    as_user: Callable[..., APIClient],
) -> None:
    user = uuid.uuid4()
    machine_session = create(as_user(user))
    services.preview_flag_set(scope=FlagScope.EVERYONE, target=PreviewTarget.LEGACY)
    legacy = create(as_user(user))
    assert legacy["framework"] == "legacy" and legacy["id"] != machine_session["id"]
    assert PreviewSession.objects.get(id=machine_session["id"]).end_reason == "operator"


def test_the_most_specific_flag_wins_and_no_flag_means_new_previews() -> None:
    user = uuid.uuid4()
    assert not preview_route_for(user_id=user, project_id="p").is_legacy
    services.preview_flag_set(scope=FlagScope.EVERYONE, target=PreviewTarget.LEGACY)
    assert preview_route_for(user_id=user, project_id="p").is_legacy
    services.preview_flag_set(scope=FlagScope.USER, user_id=user, target=PreviewTarget.NEW)
    assert not preview_route_for(user_id=user, project_id="p").is_legacy
    services.preview_flag_set(
        scope=FlagScope.PROJECT, project_id="p", target=PreviewTarget.LEGACY, legacy_url="https://appetize.io/app/p"
    )
    route = preview_route_for(user_id=user, project_id="p")
    assert (route.is_legacy, route.legacy_url) == (True, "https://appetize.io/app/p")
    assert not preview_route_for(user_id=user, project_id="other").is_legacy


def test_a_legacy_flag_without_any_appetize_url_falls_back_to_new_previews() -> None:
    services.preview_flag_set(scope=FlagScope.EVERYONE, target=PreviewTarget.LEGACY)
    with override_settings(APPETIZE_APP_URL=""):
        assert not preview_route_for(user_id=uuid.uuid4(), project_id="p").is_legacy


def test_a_flag_must_name_exactly_the_subject_its_scope_says() -> None:
    with pytest.raises(IntegrityError):
        PreviewFlag.objects.create(scope=FlagScope.USER, target=PreviewTarget.LEGACY)

"""An operator's block on a user's new previews: creates refused with 403 ``user.blocked`` and nothing written,
the block and its lifting audited once each, the user's own quota status saying why."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions import selectors, services
from sessions.models import PreviewSession, Project, UserBlock
from sessions.tests.conftest import error_code
from velocity.auth import user_claims

pytestmark = pytest.mark.django_db


def block(user: uuid.UUID, reason: str = "cost spike") -> bool:
    return services.user_block(user_id=user, reason=reason, actor=None, actor_label="on-call", now=timezone.now())


def test_a_blocked_user_is_refused_a_new_session_and_nothing_is_written(
    as_user: Callable[..., APIClient], user_id: uuid.UUID
) -> None:
    block(user_id)
    response = as_user(user_id).post("/api/v1/sessions/", {"project_id": "fresh-project"}, format="json")
    assert response.status_code == 403
    assert error_code(response) == "user.blocked"
    assert response.json()["error"]["message"] == "New previews are blocked for this account; contact support"
    assert not PreviewSession.objects.filter(user_id=user_id).exists()
    assert not Project.objects.filter(project_id="fresh-project").exists()  # the id is not claimed either


def test_the_service_refuses_under_the_users_lock_too(user_id: uuid.UUID) -> None:
    block(user_id)
    with pytest.raises(services.UserBlocked):
        services.session_create(
            claims=user_claims(user_id), user_id=user_id, project_id="p", memory_mb=512, now=timezone.now()
        )


def test_unblocking_lets_the_user_create_again(as_user: Callable[..., APIClient], user_id: uuid.UUID) -> None:
    block(user_id)
    assert services.user_unblock(user_id=user_id, reason="paid up", actor=None, actor_label="on-call")
    response = as_user(user_id).post("/api/v1/sessions/", {"project_id": "back"}, format="json")
    assert response.status_code == 201
    assert not UserBlock.objects.exists()


def test_blocking_and_unblocking_are_audited_once_each_and_repeats_change_nothing(
    audits: list[dict[str, Any]], user_id: uuid.UUID
) -> None:
    assert block(user_id) and not block(user_id, "again")
    assert services.user_unblock(user_id=user_id, reason="", actor=None, actor_label="on-call")
    assert not services.user_unblock(user_id=user_id, reason="", actor=None, actor_label="on-call")
    assert [(a["action"], a["target_type"], a["target_id"]) for a in audits] == [
        ("user.block", "user", str(user_id)),
        ("user.unblock", "user", str(user_id)),
    ]
    assert audits[0]["after"]["reason"] == "cost spike"


def test_the_users_own_quota_status_says_they_are_blocked(
    as_user: Callable[..., APIClient], user_id: uuid.UUID
) -> None:
    block(user_id)
    body = as_user(user_id).get("/api/v1/quota/").json()
    assert body["can_create"] is False
    assert body["reasons"][0]["code"] == "user.blocked"


def test_other_users_are_not_blocked(as_user: Callable[..., APIClient], user_id: uuid.UUID) -> None:
    block(user_id)
    assert as_user().post("/api/v1/sessions/", {"project_id": "theirs"}, format="json").status_code == 201


def test_the_block_and_the_live_session_are_read_in_one_round_trip(
    django_assert_num_queries: Callable[..., Any],
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    live = PreviewSession.objects.create(user_id=user, project_id="mine", status="active")
    PreviewSession.objects.create(user_id=user, project_id="old", status="ended", ended_at=timezone.now())
    PreviewSession.objects.create(user_id=other, project_id="mine", status="active")
    with django_assert_num_queries(1):
        assert selectors.user_block_and_live_session(uuid.uuid4(), "mine") == (None, None)
    assert selectors.user_block_and_live_session(user, "old") == (None, None)  # ended: not live
    assert selectors.user_block_and_live_session(user, "mine") == (None, live)
    block(user)
    found, session = selectors.user_block_and_live_session(user, "mine")
    assert (found, session) == (UserBlock.objects.get(user_id=user), live)
    assert selectors.user_block_and_live_session(other, "mine")[0] is None  # another user's block is not theirs

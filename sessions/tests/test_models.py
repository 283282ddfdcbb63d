import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions.models import EndReason, PreviewSession, Quota, SessionStatus

pytestmark = pytest.mark.django_db


def make_session(user_id: uuid.UUID, project_id: str = "p1", **fields: object) -> PreviewSession:
    return PreviewSession.objects.create(user_id=user_id, project_id=project_id, **fields)


def test_a_user_cannot_have_two_live_sessions_for_one_project(user_id: uuid.UUID) -> None:
    make_session(user_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_session(user_id, status=SessionStatus.ACTIVE)
    assert PreviewSession.objects.filter(user_id=user_id).count() == 1


def test_an_ended_session_does_not_block_a_new_one(user_id: uuid.UUID) -> None:
    make_session(user_id, status=SessionStatus.ENDED, ended_at=timezone.now(), end_reason=EndReason.USER)
    make_session(user_id, status=SessionStatus.FAILED, ended_at=timezone.now(), end_reason=EndReason.FAILED)
    live = make_session(user_id)
    assert live.is_live
    assert PreviewSession.objects.filter(user_id=user_id).count() == 3


def test_two_users_and_two_projects_each_get_a_live_session(user_id: uuid.UUID) -> None:
    make_session(user_id, "p1")
    make_session(user_id, "p2")
    make_session(uuid.uuid4(), "p1")
    assert PreviewSession.objects.filter(status=SessionStatus.CREATING).count() == 3


def test_a_finished_session_must_record_when_it_ended(user_id: uuid.UUID) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make_session(user_id, status=SessionStatus.ENDED)


def test_the_migrations_create_one_default_quota_and_refuse_a_second() -> None:
    assert Quota.objects.filter(user_id__isnull=True).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Quota.objects.create(user_id=None, max_concurrent_sessions=7)


def test_a_user_has_at_most_one_quota_override(user_id: uuid.UUID) -> None:
    Quota.objects.create(user_id=user_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        Quota.objects.create(user_id=user_id)


def test_sessions_are_stored_in_the_seeds_table(user_id: uuid.UUID) -> None:
    session = make_session(user_id, expires_at=timezone.now() + timedelta(hours=1))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT project_id, status FROM preview_sessions WHERE id = %s",
            [session.id.hex if connection.vendor == "sqlite" else session.id],
        )
        assert cursor.fetchone() == ("p1", "creating")

import uuid
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import Schedule

from sessions.models import EndReason, PreviewSession, SessionStatus
from velocity.auth import verify_token
from velocity.schedules import SCHEDULES


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_issue_token_prints_a_token_the_verifier_accepts() -> None:
    sub = uuid.uuid4()
    claims = verify_token(run("issue_token", "--sub", str(sub), "--role", "service_role", "--ttl", "120").strip())
    assert (claims.sub, claims.role) == (sub, "service_role")


def test_issue_token_refuses_a_subject_that_is_not_a_uuid() -> None:
    with pytest.raises(CommandError, match="UUID"):
        run("issue_token", "--sub", "alice")


def test_issue_token_refuses_a_non_positive_ttl() -> None:
    with pytest.raises(CommandError, match="ttl"):
        run("issue_token", "--sub", str(uuid.uuid4()), "--ttl", "0")


@pytest.mark.django_db
def test_sync_schedules_twice_changes_nothing_the_second_time() -> None:
    run("sync_schedules")
    first = list(Schedule.objects.order_by("name").values("name", "func", "minutes", "next_run"))
    second_output = run("sync_schedules")
    assert list(Schedule.objects.order_by("name").values("name", "func", "minutes", "next_run")) == first
    assert [row["name"] for row in first] == sorted(spec.name for spec in SCHEDULES)
    assert "created" not in second_output


@pytest.mark.django_db
def test_sync_schedules_repairs_a_schedule_edited_by_hand() -> None:
    run("sync_schedules")
    Schedule.objects.filter(name="cleanup_expired_sessions").update(minutes=60)
    assert "updated cleanup_expired_sessions" in run("sync_schedules")
    assert Schedule.objects.get(name="cleanup_expired_sessions").minutes == 5


@pytest.mark.django_db
def test_sweep_ends_expired_live_sessions_and_only_those() -> None:
    now = timezone.now()
    user = uuid.uuid4()
    expired = PreviewSession.objects.create(user_id=user, project_id="a", expires_at=now - timedelta(seconds=1))
    fresh = PreviewSession.objects.create(user_id=user, project_id="b", expires_at=now + timedelta(minutes=5))
    with time_machine.travel(now, tick=False):
        output = run("sweep", "--only", "cleanup_expired_sessions")
    expired.refresh_from_db()
    fresh.refresh_from_db()
    assert "ended 1 expired session(s)" in output
    assert (expired.status, expired.end_reason, expired.ended_at) == (SessionStatus.ENDED, EndReason.EXPIRED, now)
    assert fresh.status == SessionStatus.CREATING
    assert "ended 0" in run("sweep", "--only", "cleanup_expired_sessions")


@pytest.mark.django_db
def test_makemigrations_has_nothing_left_to_write() -> None:
    run("makemigrations", "--check", "--dry-run")


def test_issue_token_makes_an_anon_key_without_a_subject_and_a_user_token_needs_one() -> None:
    anon = verify_token(run("issue_token", "--role", "anon").strip())
    assert (anon.role, anon.sub) == ("anon", None)
    with pytest.raises(CommandError):
        run("issue_token", "--role", "anon", "--sub", str(uuid.uuid4()))
    with pytest.raises(CommandError):
        run("issue_token")

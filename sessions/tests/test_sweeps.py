import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.utils import timezone

from sessions import services
from sessions.models import EndReason, PreviewSession, SessionStatus
from sessions.services import sweeps
from velocity.testing import require

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
IDLE = 1800


def session(*, activity_ago: int = 0, expires_in: int = 3600, status: str = SessionStatus.ACTIVE) -> PreviewSession:
    return PreviewSession.objects.create(
        user_id=uuid.uuid4(),
        project_id="p",
        status=status,
        started_at=NOW - timedelta(hours=1),
        last_activity_at=NOW - timedelta(seconds=activity_ago),
        expires_at=NOW + timedelta(seconds=expires_in),
    )


def test_the_expiry_sweep_ends_expired_sessions_with_reason_and_time() -> None:
    expired, fresh = session(expires_in=-1), session(expires_in=60)
    with time_machine.travel(NOW, tick=False):
        assert services.session_end_expired(now=timezone.now()) == 1
    expired.refresh_from_db()
    fresh.refresh_from_db()
    assert (expired.status, expired.end_reason, expired.ended_at) == ("ended", EndReason.EXPIRED, NOW)
    assert fresh.status == SessionStatus.ACTIVE


def test_the_idle_reaper_ends_only_sessions_idle_past_the_timeout() -> None:
    idle, busy = session(activity_ago=IDLE + 1), session(activity_ago=IDLE - 5)
    assert services.session_reap_idle(now=NOW, idle_timeout=IDLE) == 1
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert (idle.status, idle.end_reason) == ("ended", EndReason.IDLE)
    assert busy.status == SessionStatus.ACTIVE


def test_an_edit_recorded_after_the_candidate_query_keeps_the_session_alive() -> None:
    """The reaper re-reads the last activity under the row lock: a fresh edit wins over a stale list."""
    idle = session(activity_ago=IDLE + 60)
    real_reap_one = sweeps._reap_one

    def edit_lands_first(session_id: uuid.UUID, **kwargs: datetime) -> bool:
        services.session_touch(session_id=session_id, source="file", now=NOW)
        return real_reap_one(session_id, **kwargs)

    sweeps._reap_one = edit_lands_first
    try:
        assert services.session_reap_idle(now=NOW, idle_timeout=IDLE) == 0
    finally:
        sweeps._reap_one = real_reap_one
    idle.refresh_from_db()
    assert (idle.status, idle.last_activity_source) == (SessionStatus.ACTIVE, "file")


def test_activity_is_written_at_most_every_few_seconds() -> None:
    live = session(activity_ago=60)
    assert services.session_touch(session_id=live.id, source="file", now=NOW)
    assert not services.session_touch(session_id=live.id, source="file", now=NOW + timedelta(seconds=2))
    assert services.session_touch(session_id=live.id, source="preview", now=NOW + timedelta(seconds=6))


def test_sessions_stuck_in_creating_are_failed_with_the_reason() -> None:
    stuck = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="p", created_at=NOW - timedelta(minutes=10))
    assert services.session_fail_stuck(now=NOW, timeout=180) == 1
    stuck.refresh_from_db()
    assert (stuck.status, stuck.end_reason, stuck.end_detail) == ("failed", "failed", "provisioning timed out")


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_end_each_session_exactly_once() -> None:
    require(connection.vendor == "postgresql", "needs concurrent connections (PostgreSQL, as in CI)")
    for _ in range(40):
        session(expires_in=-10, activity_ago=IDLE + 10)
    counts: list[int] = []
    barrier = threading.Barrier(4)

    def sweep(job: str) -> None:
        barrier.wait()
        try:
            with transaction.atomic():
                if job == "expiry":
                    counts.append(services.session_end_expired(now=NOW))
                else:
                    counts.append(services.session_reap_idle(now=NOW, idle_timeout=IDLE))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep, args=(job,)) for job in ("expiry", "expiry", "idle", "idle")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 40
    assert PreviewSession.objects.filter(status=SessionStatus.ENDED).count() == 40

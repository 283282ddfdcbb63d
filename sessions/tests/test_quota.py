import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from sessions import services
from sessions.models import PreviewSession, Quota, SessionStatus
from sessions.tests.conftest import error_code
from velocity.auth import user_claims
from velocity.testing import require

pytestmark = pytest.mark.django_db


def used_machine_time(user: uuid.UUID, seconds: int) -> None:
    """A finished session this month that held a 512 MB machine for ``seconds``."""
    now = timezone.now()
    PreviewSession.objects.create(
        user_id=user,
        project_id=f"old-{uuid.uuid4().hex[:6]}",
        status=SessionStatus.ENDED,
        machine_created_at=now - timedelta(seconds=seconds),
        ended_at=now,
        end_reason="user",
    )


def test_own_quota_shows_limits_usage_and_can_create(as_user: Callable[..., APIClient]) -> None:
    body = as_user().get("/api/v1/quota/").json()
    default = Quota.objects.get(user_id__isnull=True)
    assert body["limits"]["max_concurrent_sessions"] == default.max_concurrent_sessions
    assert body["usage"]["live_sessions"] == 0
    assert (body["can_create"], body["reasons"]) == (True, [])


@pytest.mark.parametrize(
    ("limits", "setup", "code"),
    [
        ({"max_concurrent_sessions": 1}, "live", "quota.concurrent_sessions"),
        ({"monthly_machine_seconds": 60}, "used", "quota.monthly_seconds"),
        ({"monthly_budget_usd": Decimal("0.0001")}, "used", "quota.monthly_budget"),
        ({"max_memory_mb": 256}, None, "quota.machine_size"),
    ],
)
def test_each_quota_limit_refuses_with_its_code(
    as_user: Callable[..., APIClient], limits: dict[str, object], setup: str | None, code: str
) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, **limits)
    client = as_user(user)
    if setup == "live":
        assert client.post("/api/v1/sessions/", {"project_id": "first"}, format="json").status_code == 201
    if setup == "used":
        used_machine_time(user, 3600)
    before = PreviewSession.objects.count()
    refused = client.post("/api/v1/sessions/", {"project_id": "next"}, format="json")
    assert (refused.status_code, error_code(refused)) == (429, code)
    assert PreviewSession.objects.count() == before
    status = client.get("/api/v1/quota/").json()
    assert status["can_create"] is False
    assert code in [r["code"] for r in status["reasons"]]
    assert code in [r["code"] for r in refused.json()["error"]["details"]["reasons"]]


def test_the_quota_caps_the_ttl_at_the_longest_allowed_session(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, max_session_seconds=600)
    body = as_user(user).post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()
    session = PreviewSession.objects.get(id=body["id"])
    assert session.expires_at is not None
    assert session.expires_at - session.created_at == timedelta(seconds=600)


def test_the_service_role_manages_a_users_quota(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    service = as_user(role="service_role")
    limits = {
        "max_concurrent_sessions": 4,
        "max_session_seconds": 900,
        "monthly_machine_seconds": 1000,
        "monthly_budget_usd": "12.50",
        "max_memory_mb": 2048,
    }
    created = service.put(f"/api/v1/quotas/{user}/", limits, format="json")
    updated = service.put(f"/api/v1/quotas/{user}/", {**limits, "max_concurrent_sessions": 5}, format="json")
    assert (created.status_code, updated.status_code) == (201, 200)
    assert service.get(f"/api/v1/quotas/{user}/").json()["limits"]["max_concurrent_sessions"] == 5
    assert Quota.objects.filter(user_id=user).count() == 1


def test_a_user_cannot_manage_quotas(as_user: Callable[..., APIClient]) -> None:
    user = uuid.uuid4()
    client = as_user(user)
    assert client.get(f"/api/v1/quotas/{user}/").status_code == 403
    response = client.put(f"/api/v1/quotas/{user}/", {"max_concurrent_sessions": 99}, format="json")
    assert (response.status_code, error_code(response)) == (403, "auth.forbidden")
    assert not Quota.objects.filter(user_id=user).exists()


def test_a_bad_quota_is_refused_field_by_field(as_user: Callable[..., APIClient]) -> None:
    response = as_user(role="service_role").put(
        f"/api/v1/quotas/{uuid.uuid4()}/", {"max_concurrent_sessions": -1, "monthly_budget_usd": "x"}, format="json"
    )
    assert response.status_code == 400
    assert {"max_concurrent_sessions", "monthly_budget_usd"} <= set(response.json()["error"]["details"]["fields"])


@pytest.mark.django_db(transaction=True)
def test_simultaneous_creates_never_exceed_the_concurrent_limit() -> None:
    require(
        connection.vendor == "postgresql", "the race is only real with concurrent connections (PostgreSQL, as in CI)"
    )
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, max_concurrent_sessions=3)
    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def create(index: int) -> None:
        barrier.wait()
        try:
            services.session_create(
                claims=user_claims(user), user_id=user, project_id=f"p{index}", memory_mb=512, now=timezone.now()
            )
            outcomes.append("created")
        except services.QuotaExceeded:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 3
    assert outcomes.count("refused") == 47
    assert PreviewSession.objects.filter(user_id=user, status__in=["creating", "active"]).count() == 3


def test_usage_counts_live_sessions_and_this_months_machine_time_in_one_query(
    django_assert_num_queries: Any,
) -> None:
    from sessions.selectors import month_start, usage_for_user

    user, now = uuid.uuid4(), timezone.now()
    start = month_start(now)

    def row(status: str, began: datetime | None, ended: datetime | None) -> None:
        PreviewSession.objects.create(
            user_id=user,
            project_id=uuid.uuid4().hex,
            status=status,
            machine_created_at=began,
            ended_at=ended,
            end_reason="" if ended is None else "user",
        )

    row(SessionStatus.CREATING, None, None)  # live, no machine yet: counted, no time
    row(SessionStatus.ACTIVE, start - timedelta(hours=1), None)  # live since last month: time from the 1st
    row(SessionStatus.ENDED, start - timedelta(hours=3), start - timedelta(hours=2))  # last month only: nothing
    row(SessionStatus.ENDED, now - timedelta(seconds=600), now - timedelta(seconds=300))  # 300 s this month
    with django_assert_num_queries(1):
        usage = usage_for_user(user, now=now)
    assert usage.live_sessions == 2
    assert usage.machine_seconds == int((now - start).total_seconds()) + 300

"""The expiry sweep: ``session_end_expired`` over 100,000 live sessions past their ``expires_at``.

Rows are bulk-inserted in batches. The sweep runs here, in a process configured like a task-cluster
worker (so its status publications travel to the server as the cluster's do). The conditional
UPDATE alone is timed first inside a rolled-back transaction, so the table can say how much of the
sweep is the database and how much is the announcements that follow it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from bench.results import Figure, Results
from bench.stack import Stack

GROUP = "sweep"
ROWS = 100_000
QUICK_ROWS = 10_000  # --quick: the same sweep over fewer rows; the 100,000 target is judged only on a full run
BATCH = 2_000


def seed_expired(now: datetime, total: int) -> float:
    from sessions.models import PreviewSession

    began = time.perf_counter()
    for start in range(0, total, BATCH):
        rows = [
            PreviewSession(
                user_id=uuid.uuid4(),
                project_id=f"expired-{start + index}",
                status="active",
                created_at=now - timedelta(hours=3),
                updated_at=now - timedelta(hours=3),
                expires_at=now - timedelta(hours=1),
                last_activity_at=now - timedelta(minutes=5),
            )
            for index in range(min(BATCH, total - start))
        ]
        PreviewSession.objects.bulk_create(rows, batch_size=BATCH)
    return time.perf_counter() - began


def time_update_only(now: datetime) -> float:
    from django.db import transaction

    from sessions.models import LIVE_STATUSES, PreviewSession

    began = time.perf_counter()
    with transaction.atomic():
        PreviewSession.objects.filter(status__in=LIVE_STATUSES, expires_at__lt=now).update(
            status="ended", end_reason="expired", ended_at=now, updated_at=now
        )
        elapsed = time.perf_counter() - began
        transaction.set_rollback(True)
    return elapsed


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    from django.utils import timezone

    from sessions.models import LIVE_STATUSES, PreviewSession
    from sessions.services import session_end_expired

    rows = QUICK_ROWS if quick else ROWS
    now = timezone.now()
    inserted = seed_expired(now, rows)
    update_only = time_update_only(now)
    began = time.perf_counter()
    ended = session_end_expired(now=now)
    elapsed = time.perf_counter() - began
    left = PreviewSession.objects.filter(status__in=LIVE_STATUSES, expires_at__lt=now).count()
    name, target = ("end_expired_100k", 2.0) if rows == ROWS else (f"end_expired_{rows // 1000}k", None)
    results.add(
        Figure(GROUP, name, elapsed, "s", target, note=f"ended {ended:,} of {rows:,}; {left} expired still live"),
        Figure(GROUP, "update_only", update_only, "s", note="the conditional UPDATE alone (rolled back)"),
        Figure(
            GROUP,
            "announcements",
            elapsed - update_only,
            "s",
            note="the rest: row-change, status and session:status events for the first 500 ended sessions",
        ),
        Figure(GROUP, "ended_fraction", ended / rows, "ratio", 1.0, ">="),
        Figure(
            GROUP, "bulk_insert", inserted, "s", note=f"{rows:,} rows in batches of {BATCH:,} (setup, not a target)"
        ),
    )

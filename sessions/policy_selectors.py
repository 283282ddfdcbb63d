"""Reads for the policy dry-run: the live policy (idle timeout, TTL, concurrency) and the recorded history.

Where each rule lives today: the idle timeout in ``SessionPolicy`` (empty: ``PREVIEW_INACTIVITY_TIMEOUT``), the
TTL as the default quota's ``max_session_seconds`` (capped by ``PREVIEW_SESSION_TTL``), the concurrency limit
as the default quota's ``max_concurrent_sessions``. Users with their own quota override keep theirs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, CharField, Func, Q, QuerySet
from django.db.models.functions import Cast

from machines.pricing import running_cost
from machines.selectors import machine_hourly_cost
from sessions.dry_run import ActivityMinute, DryRunResult, Policy, SessionHistory, dry_run
from sessions.models import LEGACY_FRAMEWORK, LIVE_STATUSES, PreviewSession, Quota, SessionActivity, SessionPolicy


@dataclass(frozen=True)
class LivePolicy:
    """The rules the system applies now, in the dry-run's units (minutes)."""

    idle_timeout_minutes: int
    ttl_minutes: int
    max_concurrent: int

    def as_policy(self) -> Policy:
        return Policy(self.idle_timeout_minutes, self.ttl_minutes, self.max_concurrent)

    def with_policy(self, policy: Policy) -> LivePolicy:
        """The live policy once ``policy`` is applied (its rules left None stay as they are)."""
        return LivePolicy(
            self.idle_timeout_minutes if policy.idle_timeout_minutes is None else policy.idle_timeout_minutes,
            self.ttl_minutes if policy.ttl_minutes is None else policy.ttl_minutes,
            self.max_concurrent if policy.max_concurrent is None else policy.max_concurrent,
        )


def idle_timeout_seconds() -> int:
    """The idle reaper's timeout: the applied policy's, never above ``PREVIEW_INACTIVITY_TIMEOUT`` (the setting
    is also the agent's own exit, so a setting lowered after a policy was applied still wins)."""
    row = SessionPolicy.objects.filter(id=1).first()
    applied = row.idle_timeout_seconds if row and row.idle_timeout_seconds else None
    return min(applied or settings.PREVIEW_INACTIVITY_TIMEOUT, settings.PREVIEW_INACTIVITY_TIMEOUT)


def default_quota() -> Quota:
    return Quota.objects.filter(user_id=None).first() or Quota.objects.get_or_create(user_id=None)[0]


def live_policy() -> LivePolicy:
    quota = default_quota()
    ttl = min(settings.PREVIEW_SESSION_TTL, quota.max_session_seconds)
    return LivePolicy(idle_timeout_seconds() // 60, ttl // 60, quota.max_concurrent_sessions)


def activity_history_start() -> datetime | None:
    """The oldest activity minute kept (None: nothing recorded yet)."""
    return SessionActivity.objects.order_by("minute").values_list("minute", flat=True).first()


def policy_history(*, since: datetime, now: datetime) -> list[SessionHistory]:
    """Every session that ran at some point in ``[since, now]`` with its activity minutes (two queries)."""
    ran = Q(ended_at__isnull=True) | Q(ended_at__gte=since)
    chosen = PreviewSession.objects.filter(ran, created_at__lt=now).exclude(
        framework=LEGACY_FRAMEWORK, machine__isnull=True
    )
    sessions = list(
        chosen.select_related("machine").only(
            "id", "user_id", "created_at", "ended_at", "end_reason", "memory_mb", "machine"
        )
    )
    minutes = _minutes(chosen.values("id"), now=now)
    return [_history(session, minutes.get(session.id, ())) for session in sessions]


class EpochSeconds(Func):
    """A moment as whole seconds since 1970 (integers cross the driver several times faster than timestamps)."""

    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::bigint", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # '%%%%s': the template's formatting leaves '%%s', which the SQLite backend's own pass makes '%s'.
        return self.as_sql(
            compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)", **extra
        )


def _minutes(sessions: QuerySet[Any], *, now: datetime) -> dict[uuid.UUID, list[ActivityMinute]]:
    """Each session's activity minutes, fetched as plain text and integers.

    A 30-day history is hundreds of thousands of rows: the query is built by the ORM but read with the
    driver's cursor (no per-row model machinery), ids as text and minutes as epoch seconds.
    """
    rows = (
        SessionActivity.objects.filter(session_id__in=sessions, minute__lt=now)
        .annotate(sid=Cast("session_id", CharField()), epoch=EpochSeconds("minute"))
        .values_list("sid", "epoch", "edits", "touches")
    )
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    ids: dict[str, uuid.UUID] = {}
    found: dict[uuid.UUID, list[ActivityMinute]] = defaultdict(list)
    for text, epoch, edits, touches in fetched:
        session_id = ids.get(text) or ids.setdefault(text, uuid.UUID(text))
        found[session_id].append(ActivityMinute(datetime.fromtimestamp(epoch, UTC), edits, touches))
    return found


def _history(session: PreviewSession, minutes: list[ActivityMinute] | tuple[()]) -> SessionHistory:
    machine = session.machine
    hourly = (
        machine_hourly_cost(machine)
        if machine is not None
        else running_cost("shared", 1, session.memory_mb, None, 3600)
    )
    return SessionHistory(
        id=session.id,
        user_id=session.user_id,
        started_at=session.created_at,
        ended_at=session.ended_at,
        hourly_cost=hourly,
        minutes=tuple(minutes),
        end_reason=session.end_reason,
    )


MAX_CONCURRENT_LIMIT = 100


def policy_errors(policy: Policy) -> dict[str, str]:
    """What is wrong with a candidate policy, by field (empty: it can be replayed and applied).

    Only tightening can be replayed (nobody knows what a session the reaper ended would have done with more
    time), and the idle timeout cannot exceed ``PREVIEW_INACTIVITY_TIMEOUT``: past it the agent exits by itself.
    """
    errors = {}
    idle_max, ttl_max = settings.PREVIEW_INACTIVITY_TIMEOUT // 60, settings.PREVIEW_SESSION_TTL // 60
    if policy.is_empty:
        errors["policy"] = "give at least one of idle_timeout_minutes, ttl_minutes, max_concurrent"
    if policy.idle_timeout_minutes is not None and not 1 <= policy.idle_timeout_minutes <= idle_max:
        errors["idle_timeout_minutes"] = f"between 1 and {idle_max} (PREVIEW_INACTIVITY_TIMEOUT)"
    if policy.ttl_minutes is not None and not 1 <= policy.ttl_minutes <= ttl_max:
        errors["ttl_minutes"] = f"between 1 and {ttl_max} (PREVIEW_SESSION_TTL)"
    if policy.max_concurrent is not None and not 1 <= policy.max_concurrent <= MAX_CONCURRENT_LIMIT:
        errors["max_concurrent"] = f"between 1 and {MAX_CONCURRENT_LIMIT}"
    return errors


def policy_dry_run(policy: Policy, *, now: datetime, days: int = 30) -> DryRunResult:
    """What ``policy`` would have changed over the ``days`` before ``now``, or since the activity history
    began when that is later (a session from before it would look idle from its start)."""
    since = max(now - timedelta(days=days), activity_history_start() or now)
    return dry_run(policy_history(since=since, now=now), policy, since=since, now=now)


def live_sessions_idle_for(minutes: int, *, now: datetime) -> int:
    """How many live sessions have been quiet longer than ``minutes`` (the reaper's next catch at that timeout)."""
    quiet = Q(last_activity_at__lt=now - timedelta(minutes=minutes)) | Q(last_activity_at__isnull=True)
    return PreviewSession.objects.filter(quiet, status__in=LIVE_STATUSES).count()

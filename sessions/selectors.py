"""Reads: ownership, listings and quota usage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from machines.pricing import running_cost
from realtime_bridge.events import project_topic
from sessions.models import (
    LIVE_STATUSES,
    FlagScope,
    PreviewFlag,
    PreviewSession,
    PreviewTarget,
    Project,
    ProjectMember,
    Quota,
    SessionStatus,
)


def session_visible_to(caller: Any) -> QuerySet[PreviewSession]:
    """Every session the caller may see: all for the service role, else only their own (the seed's RLS)."""
    sessions = PreviewSession.objects.select_related("machine")
    if getattr(caller, "is_service_role", False):
        return sessions
    return sessions.filter(user_id=caller.id)


def session_get_for_user(caller: Any, session_id: uuid.UUID | str) -> PreviewSession | None:
    """The one ownership check: another user's session is indistinguishable from a missing one."""
    try:
        return session_visible_to(caller).get(id=session_id)
    except (PreviewSession.DoesNotExist, ValueError):
        return None


def session_assigned_to_machine(machine_id: uuid.UUID) -> PreviewSession | None:
    """The live session a machine serves (what a warm machine's agent waits to learn)."""
    return PreviewSession.objects.filter(machine_id=machine_id, status__in=LIVE_STATUSES).first()


def session_of_machine(machine_id: uuid.UUID) -> PreviewSession | None:
    """The newest session a machine ran (or runs): the one its agent reports for."""
    return PreviewSession.objects.filter(machine_id=machine_id).order_by("-created_at").first()


def session_for_preview(session_id: uuid.UUID) -> PreviewSession | None:
    """A session and its machine, for the preview route (which anyone holding the URL may use)."""
    return PreviewSession.objects.select_related("machine").filter(id=session_id).first()


def session_live_for_project(user_id: uuid.UUID, project_id: str) -> PreviewSession | None:
    return PreviewSession.objects.filter(user_id=user_id, project_id=project_id, status__in=LIVE_STATUSES).first()


def quota_for_user(user_id: uuid.UUID) -> Quota:
    """The user's override, else the default row (recreated with model defaults if someone deleted it)."""
    return Quota.objects.filter(user_id=user_id).first() or Quota.objects.get_or_create(user_id=None)[0]


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Usage:
    live_sessions: int
    machine_seconds: int
    cost_usd: Decimal
    period_start: datetime


def usage_for_user(user_id: uuid.UUID, *, now: datetime) -> Usage:
    """Live sessions now, and the machine time (and its cost) this calendar month."""
    start = month_start(now)
    sessions = PreviewSession.objects.filter(user_id=user_id, machine_created_at__isnull=False).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gte=start)
    )
    seconds = 0.0
    cost = Decimal(0)
    for began, ended, memory_mb in sessions.values_list("machine_created_at", "ended_at", "memory_mb"):
        if began is None:
            continue
        held = max(0.0, ((ended or now) - max(began, start)).total_seconds())
        seconds += held
        cost += running_cost("shared", 1, memory_mb, None, held)
    live = PreviewSession.objects.filter(user_id=user_id, status__in=LIVE_STATUSES).count()
    return Usage(
        live_sessions=live, machine_seconds=int(seconds), cost_usd=cost.quantize(Decimal("0.0001")), period_start=start
    )


@dataclass(frozen=True)
class QuotaDecision:
    quota: Quota
    usage: Usage
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_create(self) -> bool:
        return not self.reasons


def quota_evaluate(user_id: uuid.UUID, *, now: datetime, memory_mb: int) -> QuotaDecision:
    """Every reason a new session would be refused, most pressing first (empty: it would be allowed)."""
    quota = quota_for_user(user_id)
    usage = usage_for_user(user_id, now=now)
    reasons = []
    if usage.live_sessions >= quota.max_concurrent_sessions:
        reasons.append(
            _reason(
                "quota.concurrent_sessions",
                "too many live sessions",
                usage.live_sessions,
                quota.max_concurrent_sessions,
            )
        )
    if usage.machine_seconds >= quota.monthly_machine_seconds:
        reasons.append(
            _reason(
                "quota.monthly_seconds",
                "this month's machine time is used up",
                usage.machine_seconds,
                quota.monthly_machine_seconds,
            )
        )
    if usage.cost_usd >= quota.monthly_budget_usd:
        reasons.append(
            _reason(
                "quota.monthly_budget",
                "this month's budget is spent",
                str(usage.cost_usd),
                str(quota.monthly_budget_usd),
            )
        )
    if memory_mb > quota.max_memory_mb:
        reasons.append(
            _reason("quota.machine_size", "the machine is larger than allowed", memory_mb, quota.max_memory_mb)
        )
    return QuotaDecision(quota=quota, usage=usage, reasons=reasons)


def _reason(code: str, message: str, used: Any, limit: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "used": used, "limit": limit}


def session_ttl_seconds(quota: Quota, default_ttl: int) -> int:
    return min(default_ttl, quota.max_session_seconds)


def session_deadlines(session: PreviewSession, *, idle_timeout: int) -> dict[str, datetime | None]:
    """When the idle reaper and the expiry sweep would end this session ("why is this still running")."""
    activity = session.last_activity_at or session.started_at or session.created_at
    return {"idle_deadline": activity + timedelta(seconds=idle_timeout), "ttl_deadline": session.expires_at}


@dataclass(frozen=True)
class PreviewRoute:
    """Where a user's preview of a project comes from, by the rollback flags."""

    target: str
    legacy_url: str = ""
    flag: PreviewFlag | None = None

    @property
    def is_legacy(self) -> bool:
        return self.target == PreviewTarget.LEGACY


def preview_route_for(*, user_id: uuid.UUID, project_id: str) -> PreviewRoute:
    """The most specific flag (project, user, everyone) decides; no flag means the new previews.

    A legacy flag with no Appetize URL (its own or ``APPETIZE_APP_URL``) cannot be honoured: new previews.
    """
    flags = PreviewFlag.objects.filter(
        Q(scope=FlagScope.PROJECT, project_id=project_id)
        | Q(scope=FlagScope.USER, user_id=user_id)
        | Q(scope=FlagScope.EVERYONE)
    )
    precedence = {FlagScope.PROJECT: 0, FlagScope.USER: 1, FlagScope.EVERYONE: 2}
    flag = min(flags, key=lambda f: precedence[FlagScope(f.scope)], default=None)
    if flag is None or flag.target == PreviewTarget.NEW:
        return PreviewRoute(target=PreviewTarget.NEW, flag=flag)
    url = (flag.legacy_url or settings.APPETIZE_APP_URL).replace("{project_id}", project_id)
    if not url:
        return PreviewRoute(target=PreviewTarget.NEW, flag=flag)
    return PreviewRoute(target=PreviewTarget.LEGACY, legacy_url=url, flag=flag)


def project_visible_to(caller: Any) -> QuerySet[Project]:
    """Projects the caller may see: all for the service role, else those they own or are a member of."""
    projects = Project.objects.prefetch_related("members")
    if getattr(caller, "is_service_role", False):
        return projects
    member_of = ProjectMember.objects.filter(user_id=caller.id).values("project_id")
    return projects.filter(Q(owner_id=caller.id) | Q(pk__in=member_of))


def project_get_for_user(caller: Any, project_id: str) -> Project | None:
    """The one ownership check for projects: another user's project is indistinguishable from a missing one."""
    return project_visible_to(caller).filter(project_id=project_id).first()


def live_project_topics() -> set[str]:
    """``project:{id}`` for every project with a live session (what the bridge mirrors)."""
    projects = PreviewSession.objects.filter(status__in=LIVE_STATUSES).values_list("project_id", flat=True)
    return {project_topic(project) for project in projects.distinct()}


def sessions_stuck_creating(*, now: datetime, older_than: float) -> QuerySet[PreviewSession]:
    """Sessions still ``creating`` ``older_than`` seconds after they were asked for, oldest first: a
    provisioning task that never ran (the cluster is down or backed up) or a launch that hangs."""
    cutoff = now - timedelta(seconds=older_than)
    return PreviewSession.objects.filter(status=SessionStatus.CREATING, created_at__lt=cutoff).order_by("created_at")

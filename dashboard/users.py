"""Reads for the user page: everything an operator needs to act on one user (the quota that really applies
and where it comes from, spend against budget, live sessions with their size and cost, projects, history)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet

from dashboard.models import AuditRecord
from machines import selectors as machine_selectors
from sessions.models import LIVE_STATUSES, PreviewSession, Project, ProjectMember, Quota, UserBlock
from sessions.selectors import QuotaDecision, month_start, quota_evaluate, user_block_for

RECENT_SESSIONS = 20
RECENT_RECORDS = 20


@dataclass(frozen=True)
class LiveSession:
    session: PreviewSession
    cost_so_far: Decimal | None  # None: no machine yet
    cost_per_hour: Decimal | None


@dataclass(frozen=True)
class UserProject:
    project_id: str
    role: str  # owner, editor, viewer, or "" (sessions only: another access backend)


@dataclass(frozen=True)
class UserPage:
    user_id: uuid.UUID
    quota: Quota  # the one that applies
    default_quota: Quota
    block: UserBlock | None
    decision: QuotaDecision
    spend: Decimal  # machine cost this month, exact
    live: list[LiveSession]
    recent: list[PreviewSession]
    projects: list[UserProject]
    records: list[AuditRecord]

    @property
    def has_override(self) -> bool:
        return not self.quota.is_default

    @property
    def budget_used(self) -> float | None:
        budget = self.quota.monthly_budget_usd
        return float(self.spend / budget) if budget else None

    @property
    def cost_per_hour(self) -> Decimal:
        return sum((row.cost_per_hour or Decimal(0) for row in self.live), Decimal(0))


def user_page(user_id: uuid.UUID, *, now: datetime, memory_mb: int) -> UserPage:
    decision = quota_evaluate(user_id, now=now, memory_mb=memory_mb)
    return UserPage(
        user_id=user_id,
        quota=decision.quota,
        default_quota=Quota.objects.get_or_create(user_id=None)[0],
        block=user_block_for(user_id),
        decision=decision,
        spend=machine_selectors.cost_of_user(user_id, start=month_start(now), end=now, now=now).cost,
        live=user_live_sessions(user_id, now=now),
        recent=list(user_sessions(user_id).exclude(status__in=LIVE_STATUSES)[:RECENT_SESSIONS]),
        projects=user_projects(user_id),
        records=user_records(user_id),
    )


def user_known(user_id: uuid.UUID) -> bool:
    """A user the orchestrator has heard of: sessions, a quota, a block or a project of theirs."""
    return (
        PreviewSession.objects.filter(user_id=user_id).exists()
        or Quota.objects.filter(user_id=user_id).exists()
        or UserBlock.objects.filter(user_id=user_id).exists()
        or Project.objects.filter(Q(owner_id=user_id) | Q(members__user_id=user_id)).exists()
    )


def user_sessions(user_id: uuid.UUID) -> QuerySet[PreviewSession]:
    return PreviewSession.objects.filter(user_id=user_id).select_related("machine").order_by("-created_at", "-id")


def user_live_sessions(user_id: uuid.UUID, *, now: datetime) -> list[LiveSession]:
    """Live sessions with what their machines cost so far and per hour (events prefetched: fixed queries)."""
    live = (
        user_sessions(user_id).filter(status__in=LIVE_STATUSES).prefetch_related("machine__events", "machine__sessions")
    )
    return [_live_row(session, now) for session in live]


def _live_row(session: PreviewSession, now: datetime) -> LiveSession:
    machine = session.machine
    if machine is None:
        return LiveSession(session, None, None)
    hourly = None if machine.is_gone else machine_selectors.machine_hourly_cost(machine)
    return LiveSession(session, machine_selectors.machine_cost_so_far(machine, now), hourly)


def user_projects(user_id: uuid.UUID) -> list[UserProject]:
    """Projects the user owns or is a member of (the registry), then those they only had sessions for."""
    owned = Project.objects.filter(owner_id=user_id).values_list("project_id", flat=True)
    memberships = ProjectMember.objects.filter(user_id=user_id).values_list("project__project_id", "role")
    rows = {project_id: "owner" for project_id in owned}
    rows.update({project_id: role for project_id, role in memberships if project_id not in rows})
    used = PreviewSession.objects.filter(user_id=user_id).values_list("project_id", flat=True).distinct()
    rows.update({project_id: "" for project_id in used if project_id not in rows})
    return [UserProject(project_id, role) for project_id, role in sorted(rows.items())]


def user_records(user_id: uuid.UUID, *, limit: int = RECENT_RECORDS) -> list[AuditRecord]:
    """The audit records about the user: actions on them, and changes of their quota or flag."""
    about = (
        Q(target_type="user", target_id=str(user_id)) | Q(after__user_id=str(user_id)) | Q(before__user_id=str(user_id))
    )
    return list(AuditRecord.objects.select_related("actor").filter(about).order_by("-at", "-id")[:limit])

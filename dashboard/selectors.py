"""Reads for the operator dashboard. Every list runs a fixed number of queries whatever its length."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from dashboard.search import MIN_PREFIX, SearchTerms, search_parse
from machines import selectors as machine_selectors
from machines.models import GONE_STATES, DriftFinding, Machine, MachineEvent, ProviderHealth
from machines.selectors import CostTotals
from sessions.budgets import BudgetState
from sessions.models import LIVE_STATUSES, BudgetNotice, EndReason, PreviewSession, Quota, SessionTrace, TraceKind
from sessions.selectors import (
    SyncBacklog,
    budget_notice_latest,
    budget_state_for_user,
    month_start,
    session_heartbeat,
    session_traces,
    sessions_stuck_creating,
    sync_backlog,
)
from velocity import task_queue

logger = logging.getLogger(__name__)

PAGE_SIZE = 50


# --- sessions --------------------------------------------------------------------------------------


def session_counts(*, now: datetime) -> dict[str, int]:
    """Live sessions, and those that finished in the last 24 hours, by status."""
    recent = Q(status__in=LIVE_STATUSES) | Q(ended_at__gte=now - timedelta(hours=24))
    rows = PreviewSession.objects.filter(recent).order_by().values("status").annotate(n=Count("id"))
    counts = {status: 0 for status in ("creating", "active", "ended", "failed")}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def session_search(*, status: str = "", user: str = "", project: str = "", query: str = "") -> QuerySet[PreviewSession]:
    """The sessions list's rows: filter by status, user (an id or a 6+ character prefix) and project; search
    ids by prefix (session, user, machine), the provider's machine id and project names (see ``search``)."""
    sessions = PreviewSession.objects.select_related("machine").order_by("-created_at", "-id")
    if status:
        sessions = sessions.filter(status=status)
    if user:
        sessions = sessions.filter(user_id__startswith=search_parse(user).id_prefix or NO_MATCH)
    if project:
        sessions = sessions.filter(project_id=project)
    if query:
        sessions = sessions.filter(_search(search_parse(query)))
    return sessions


NO_MATCH = str(uuid.UUID(int=0))  # a prefix no generated id has: a filter that cannot be read matches nothing


def _search(terms: SearchTerms) -> Q:
    provider_id = terms.text.lower()
    match = Q(project_id__icontains=terms.text)
    if len(provider_id) >= MIN_PREFIX:
        match |= Q(machine__provider_machine_id__istartswith=provider_id)
    else:
        match |= Q(machine__provider_machine_id__iexact=provider_id)
    if terms.id_prefix:
        prefix = terms.id_prefix
        match |= Q(id__startswith=prefix) | Q(user_id__startswith=prefix) | Q(machine__id__startswith=prefix)
    return match


def search_jump(terms: SearchTerms) -> tuple[str, uuid.UUID] | None:
    """Where a whole id leads straight to: its session, or its user's page (a machine: its session)."""
    exact = terms.exact_id
    if exact is None:
        return None
    session = PreviewSession.objects.filter(Q(id=exact) | Q(machine_id=exact)).order_by("-created_at").first()
    if session is not None:
        return "session", session.id
    if PreviewSession.objects.filter(user_id=exact).exists():
        return "user", exact
    return None


def users_matching(terms: SearchTerms, *, limit: int = 10) -> list[uuid.UUID]:
    """The users whose id starts with the searched prefix (for links to their pages above the results)."""
    if not terms.id_prefix:
        return []
    rows = PreviewSession.objects.filter(user_id__startswith=terms.id_prefix).order_by("user_id")
    return list(rows.values_list("user_id", flat=True).distinct()[:limit])


@dataclass(frozen=True)
class SessionBudget:
    """The session's user's month against their budget, for the session page's budget line."""

    state: BudgetState
    notice: BudgetNotice | None  # the highest level reached this month (80, 95, 100), or None below 80 %
    ended_by_budget: bool

    @property
    def used(self) -> float | None:
        return float(self.state.percent) / 100 if self.state.percent is not None else None


def session_budget(session: PreviewSession, *, now: datetime) -> SessionBudget:
    return SessionBudget(
        state=budget_state_for_user(session.user_id, now=now),
        notice=budget_notice_latest(session.user_id, now=now),
        ended_by_budget=session.end_reason == EndReason.BUDGET,
    )


def session_for_operator(session_id: uuid.UUID) -> PreviewSession | None:
    return PreviewSession.objects.select_related("machine", "agent_heartbeat").filter(id=session_id).first()


@dataclass(frozen=True)
class AgentFacts:
    """What the session's page says about its agent: the watch's verdict and what it was based on."""

    health: str
    detail: str
    changed_at: datetime | None
    seen_at: datetime | None
    joined: bool | None
    restarts: int
    restarted_at: datetime | None
    status: Mapping[str, Any]


def session_agent(session: PreviewSession) -> AgentFacts:
    beat = session_heartbeat(session)
    return AgentFacts(
        health=session.health,
        detail=session.health_detail,
        changed_at=session.health_changed_at,
        seen_at=beat.seen_at if beat else None,
        joined=beat.joined if beat else None,
        restarts=session.agent_restarts,
        restarted_at=session.agent_restarted_at,
        status=beat.status if beat else {},
    )


def session_machine_events(session: PreviewSession) -> list[MachineEvent]:
    if session.machine_id is None:
        return []
    return list(MachineEvent.objects.filter(machine_id=session.machine_id).order_by("at", "id"))


SYNC_FEED_LIMIT = 200  # as many rows as the page's live feed keeps (live.js FEED_LIMIT)


@dataclass(frozen=True)
class AgentRecords:
    """What the session page shows of its agent on load: the kept log lines (oldest first, as a terminal
    reads), the kept sync events (newest first, as the live feed adds them) and the unanswered updates."""

    logs: list[SessionTrace]
    syncs: list[SessionTrace]
    backlog: SyncBacklog
    backlog_seconds: int


def session_agent_records(session: PreviewSession, *, now: datetime) -> AgentRecords:
    backlog = sync_backlog(session.id, now=now)
    return AgentRecords(
        logs=session_traces(session.id, kind=TraceKind.LOG, limit=settings.AGENT_LOG_KEEP),
        syncs=session_traces(session.id, kind=TraceKind.SYNC, limit=SYNC_FEED_LIMIT)[::-1],
        backlog=backlog,
        backlog_seconds=backlog.seconds(now),
    )


@dataclass(frozen=True)
class WaterfallStep:
    label: str
    at: datetime | None
    offset_ms: float | None
    duration_ms: float | None
    percent: int = 0  # of the whole wait, for the bar


def session_waterfall(session: PreviewSession) -> list[WaterfallStep]:
    """Queued → machine created → started → agent ready → dev server ready, each with its offset."""
    marks: list[tuple[str, datetime | None]] = [
        ("queued", session.queued_at or session.created_at),
        ("machine created", session.machine_created_at),
        ("machine started", session.machine_started_at),
        ("agent ready", _agent_up(session)),
        ("dev server ready", session.agent_ready_at),
    ]
    origin = marks[0][1]
    steps, previous = [], origin
    for label, at in marks:
        offset = _ms(at - origin) if at and origin else None
        duration = _ms(at - previous) if at and previous else None
        steps.append(WaterfallStep(label, at, offset, duration))
        previous = at or previous
    total = max((step.offset_ms or 0 for step in steps), default=0) or 1
    return [replace(step, percent=round(100 * (step.duration_ms or 0) / total)) for step in steps]


def _agent_up(session: PreviewSession) -> datetime | None:
    """When the agent was up and turned to the dev server: it reports ``ready`` once the dev server
    answers, with how long ``npm_install`` and ``dev_server_start`` took in its boot steps."""
    if session.agent_ready_at is None:
        return None
    steps = session.boot_timings or {}
    spent = sum(float(steps.get(name) or 0) for name in ("npm_install", "dev_server_start"))
    moment = session.agent_ready_at - timedelta(seconds=spent)
    return max(moment, session.machine_started_at) if session.machine_started_at else moment


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 1)


# --- the operator streams' snapshots (``/ws/ops/``) ----------------------------------------------------


def live_sessions(*, limit: int = 200) -> list[dict[str, Any]]:
    """The operator snapshot: live sessions, newest first, as JSON-ready dicts."""
    rows = (
        PreviewSession.objects.filter(status__in=LIVE_STATUSES)
        .order_by("-created_at")
        .values("id", "user_id", "project_id", "status", "preview_url", "framework", "created_at")
    )
    return [_jsonable(row) for row in rows[:limit]]


SNAPSHOT_FIELDS = (
    "id",
    "user_id",
    "project_id",
    "status",
    "preview_url",
    "framework",
    "created_at",
    "started_at",
    "ended_at",
    "end_reason",
)


def session_snapshot(session_id: uuid.UUID) -> dict[str, Any] | None:
    row = PreviewSession.objects.filter(pk=session_id).values(*SNAPSHOT_FIELDS).first()
    return None if row is None else _jsonable(row)


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


# --- machines --------------------------------------------------------------------------------------


def machine_counts(*, now: datetime) -> dict[str, int]:
    """Machines by state; gone ones only when they went in the last 24 hours."""
    recent = ~Q(state__in=GONE_STATES) | Q(updated_at__gte=now - timedelta(hours=24))
    rows = Machine.objects.filter(recent).order_by().values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


def machine_list(*, state: str = "") -> QuerySet[Machine]:
    """Machines with their latest session's id, user and project (three subqueries, one query)."""
    latest = PreviewSession.objects.filter(machine=OuterRef("pk")).order_by("-created_at")
    machines = (
        Machine.objects.annotate(
            session_id=Subquery(latest.values("id")[:1]),
            session_user_id=Subquery(latest.values("user_id")[:1]),
            session_project_id=Subquery(latest.values("project_id")[:1]),
        )
        .order_by("-created_at")
        .prefetch_related("events", "sessions")
    )
    if state == "live":
        return machines.exclude(state__in=GONE_STATES)
    return machines.filter(state=state) if state else machines


def machine_rows(machines: Iterable[Machine], *, now: datetime) -> list[dict[str, Any]]:
    """Each machine with its uptime and cost so far (from the events and sessions prefetched by the list)."""
    rows = []
    for machine in machines:
        uptime = machine_selectors.machine_uptime(machine, now)
        cost = machine_selectors.machine_cost_so_far(machine, now)
        rows.append({"machine": machine, "uptime": uptime.total_seconds() if uptime else None, "cost": cost})
    return rows


@dataclass(frozen=True)
class KillTarget:
    """What the kill confirmation names: the machine, whose session it runs, and what it costs."""

    machine: Machine
    session: PreviewSession | None
    cost_so_far: Decimal
    cost_per_hour: Decimal


def machine_for_kill(machine_id: uuid.UUID, *, now: datetime) -> KillTarget | None:
    machine = Machine.objects.prefetch_related("events", "sessions").filter(id=machine_id).first()
    if machine is None:
        return None
    return KillTarget(
        machine,
        machine.latest_session,
        machine_selectors.machine_cost_so_far(machine, now),
        machine_selectors.machine_hourly_cost(machine),
    )


def machine_activity_per_minute(*, now: datetime, minutes: int = 60) -> dict[str, list[int]]:
    """Creations and destructions in each of the last ``minutes`` minutes, oldest first."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    series = {"created": [0] * minutes, "destroyed": [0] * minutes}
    rows = MachineEvent.objects.filter(at__gte=start, to_state__in=list(series)).values_list("to_state", "at")
    for state, at in rows:
        index = int((at - start).total_seconds() // 60)
        if 0 <= index < minutes:
            series[state][index] += 1
    return series


# --- cost --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostSummary:
    today: Decimal
    month_to_date: Decimal
    projected_month: Decimal


def cost_summary(*, now: datetime) -> CostSummary:
    return CostSummary(
        machine_selectors.cost_today(now).cost,
        machine_selectors.cost_month_to_date(now).cost,
        machine_selectors.cost_projected_month(now),
    )


@dataclass(frozen=True)
class UserCost:
    user_id: str | None  # None: the warm pool
    totals: CostTotals
    budget: Decimal | None

    @property
    def cost(self) -> Decimal:
        return self.totals.cost

    @property
    def machine_seconds(self) -> Decimal:
        return self.totals.started_seconds

    @property
    def idle_seconds(self) -> Decimal:
        return self.totals.idle_seconds

    @property
    def budget_used(self) -> float | None:
        return float(self.cost / self.budget) if self.budget else None


def user_costs(*, now: datetime) -> list[UserCost]:
    """Month-to-date cost per user, exact to now, against each one's budget; dearest first."""
    by_user: dict[str | None, CostTotals] = defaultdict(CostTotals)
    for (_, user_id), totals in machine_selectors.cost_by_day_and_user(
        start=month_start(now), end=now, now=now
    ).items():
        by_user[user_id] += totals
    budgets = _budgets([uuid.UUID(user_id) for user_id in by_user if user_id])
    rows = [
        UserCost(user_id, totals, budgets.get(user_id, budgets.get(None)) if user_id else None)
        for user_id, totals in by_user.items()
    ]
    return sorted(rows, key=lambda row: row.cost, reverse=True)


def _budgets(user_ids: list[uuid.UUID]) -> dict[str | None, Decimal]:
    rows = Quota.objects.filter(Q(user_id__in=user_ids) | Q(user_id__isnull=True))
    return {str(user) if user else None: budget for user, budget in rows.values_list("user_id", "monthly_budget_usd")}


# --- health of the moving parts ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpsHealth:
    """What an operator on call checks first: is the task cluster alive and keeping up, are sessions stuck
    in ``creating``, is the provider answering."""

    cluster: task_queue.ClusterHealth
    queue: task_queue.QueueHealth
    queue_lag_limit: int
    stuck_creating: list[PreviewSession]
    stuck_creating_count: int
    stuck_after: int
    provider: str
    provider_health: ProviderHealth | None

    @property
    def queue_lagging(self) -> bool:
        return self.queue.oldest_age is not None and self.queue.oldest_age > self.queue_lag_limit


STUCK_LISTED = 10


def ops_health(*, now: datetime) -> OpsHealth:
    stuck = sessions_stuck_creating(now=now, older_than=settings.STUCK_CREATING_SECONDS)
    return OpsHealth(
        cluster=task_queue.cluster_health_now(now=now),
        queue=task_queue.queue_health(now=now),
        queue_lag_limit=settings.QUEUE_LAG_SECONDS,
        stuck_creating=list(stuck[:STUCK_LISTED]),
        stuck_creating_count=stuck.count(),
        stuck_after=settings.STUCK_CREATING_SECONDS,
        provider=settings.MACHINE_PROVIDER,
        provider_health=machine_selectors.provider_health(settings.MACHINE_PROVIDER),
    )


def drift_findings_recent(*, now: datetime) -> list[DriftFinding]:
    """The last day's reconciliation findings (what was found, what was done), newest first."""
    return list(machine_selectors.drift_findings_since(now - timedelta(hours=24))[:100])


def session_drift_findings(session: PreviewSession) -> list[DriftFinding]:
    return list(machine_selectors.drift_findings_of(session_id=session.id, machine_id=session.machine_id))

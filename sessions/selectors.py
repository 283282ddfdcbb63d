"""Reads: ownership, listings and quota usage."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet

from machines.models import GONE_STATES, MachineState
from machines.pricing import running_cost
from machines.selectors import machine_hourly_cost, spend_of_users
from realtime_bridge.events import project_topic
from sessions.budgets import BudgetState
from sessions.models import (
    LIVE_STATUSES,
    AgentHeartbeat,
    BudgetNotice,
    FlagScope,
    PreviewFlag,
    PreviewSession,
    PreviewTarget,
    Project,
    ProjectMember,
    Quota,
    SessionStatus,
    SessionTrace,
    TraceKind,
    UserBlock,
)

# Broadcasts seen on a project with no live session still reach the sessions that ended this recently.
TRACE_ENDED_GRACE = timedelta(seconds=60)


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


MACHINE_ENDING_STATES = (*GONE_STATES, MachineState.DESTROYING)


def sessions_to_watch() -> list[PreviewSession]:
    """Active sessions on a machine, with the machine and the agent's last heartbeat: the agent watch's round.

    ``creating`` ones are not watched: their agent is still booting, and the provisioning timeout covers them.
    Nor are those whose machine is going or gone: reconciliation and the machine's end already end them.
    """
    sessions = PreviewSession.objects.filter(status=SessionStatus.ACTIVE, machine__isnull=False).exclude(
        machine__state__in=MACHINE_ENDING_STATES
    )
    return list(sessions.select_related("machine", "agent_heartbeat").order_by("created_at"))


def session_heartbeat(session: PreviewSession) -> AgentHeartbeat | None:
    """The agent's last heartbeat for this session, or None when it never sent one."""
    try:
        return session.agent_heartbeat
    except AgentHeartbeat.DoesNotExist:
        return None


@dataclass(frozen=True)
class ResourceReading:
    """The newest CPU and memory fractions a live session's agent reported for its machine."""

    session_id: uuid.UUID
    machine_id: uuid.UUID
    cpu: float | None
    memory: float | None


def machine_resource_readings(*, now: datetime, fresh_for: float) -> list[ResourceReading]:
    """Readings of live sessions whose agent beat within ``fresh_for`` seconds (an older one is no reading)."""
    beats = AgentHeartbeat.objects.filter(
        session__status__in=LIVE_STATUSES,
        session__machine__isnull=False,
        seen_at__gte=now - timedelta(seconds=fresh_for),
    ).values_list("session_id", "session__machine_id", "status")
    readings = []
    for session_id, machine_id, status in beats:
        cpu, memory = _ratio(status, "cpuRatio"), _ratio(status, "memoryRatio")
        if cpu is not None or memory is not None:
            readings.append(ResourceReading(session_id, machine_id, cpu, memory))
    return readings


def _ratio(status: Any, key: str) -> float | None:
    value = status.get(key) if isinstance(status, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def session_for_preview(session_id: uuid.UUID) -> PreviewSession | None:
    """A session and its machine, for the preview route (which anyone holding the URL may use)."""
    return PreviewSession.objects.select_related("machine").filter(id=session_id).first()


def _live_for_project(user_id: uuid.UUID, project_id: str) -> QuerySet[PreviewSession]:
    return PreviewSession.objects.filter(user_id=user_id, project_id=project_id, status__in=LIVE_STATUSES)


def session_live_for_project(user_id: uuid.UUID, project_id: str) -> PreviewSession | None:
    return _live_for_project(user_id, project_id).first()


def user_block_and_live_session(user_id: uuid.UUID, project_id: str) -> tuple[UserBlock | None, PreviewSession | None]:
    """``user_block_for`` and ``session_live_for_project`` in one round trip (a create asks both, twice): each is
    a subquery of one ``SELECT``, and a row is fetched only when there is one (a blocked user, a live session)."""
    block = UserBlock.objects.filter(user_id=user_id).values("pk")[:1]
    live = _live_for_project(user_id, project_id)
    (block_sql, block_params), (live_sql, live_params) = (
        block.query.sql_with_params(),
        live.order_by("pk").values("pk")[:1].query.sql_with_params(),
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ({block_sql}), ({live_sql})", [*block_params, *live_params])
        block_id, live_id = cursor.fetchone()
    found_block = UserBlock.objects.filter(pk=block_id).first() if block_id is not None else None
    return found_block, live.filter(pk=live_id).first() if live_id is not None else None


def quota_for_user(user_id: uuid.UUID) -> Quota:
    """The user's override, else the default row (recreated with model defaults if someone deleted it): both
    asked for in one query, the override first."""
    either = Quota.objects.filter(Q(user_id=user_id) | Q(user_id__isnull=True))
    found = either.order_by(F("user_id").asc(nulls_last=True)).first()
    return found or Quota.objects.get_or_create(user_id=None)[0]


def user_block_for(user_id: uuid.UUID) -> UserBlock | None:
    """The operator's block on the user's new previews, or None."""
    return UserBlock.objects.filter(user_id=user_id).first()


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Usage:
    live_sessions: int
    machine_seconds: int
    cost_usd: Decimal
    period_start: datetime


def usage_for_user(user_id: uuid.UUID, *, now: datetime) -> Usage:
    """Live sessions now, and the machine time (and its cost) this calendar month: one query for both."""
    start = month_start(now)
    held_this_month = Q(machine_created_at__isnull=False) & (Q(ended_at__isnull=True) | Q(ended_at__gte=start))
    rows = PreviewSession.objects.filter(Q(user_id=user_id) & (held_this_month | Q(status__in=LIVE_STATUSES)))
    seconds, cost, live = 0.0, Decimal(0), 0
    for began, ended, memory_mb, status in rows.values_list("machine_created_at", "ended_at", "memory_mb", "status"):
        live += status in LIVE_STATUSES
        held = _held_this_month(began, ended, start=start, now=now)
        seconds += held
        cost += running_cost("shared", 1, memory_mb, None, held) if held else Decimal(0)
    return Usage(
        live_sessions=live, machine_seconds=int(seconds), cost_usd=cost.quantize(Decimal("0.0001")), period_start=start
    )


def _held_this_month(began: datetime | None, ended: datetime | None, *, start: datetime, now: datetime) -> float:
    """Seconds a session held its machine since ``start`` (0 without a machine, or for one given back before)."""
    if began is None or (ended is not None and ended < start):
        return 0.0
    return max(0.0, ((ended or now) - max(began, start)).total_seconds())


# Machines that cost their compute price per hour now, or will in a moment.
BURNING_STATES = (MachineState.CREATED, MachineState.STARTING, MachineState.STARTED)
# The budget check also looks at users whose sessions ended this recently: their last minutes may cross a level.
BUDGET_RECENTLY_ENDED = timedelta(minutes=10)


def budget_users_to_check(*, now: datetime) -> list[uuid.UUID]:
    """Users whose spend may have moved since the last check: a live session, or one that just ended."""
    recent = Q(status__in=LIVE_STATUSES) | Q(ended_at__gte=now - BUDGET_RECENTLY_ENDED)
    return list(PreviewSession.objects.filter(recent).values_list("user_id", flat=True).distinct())


def quotas_for_users(user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Quota]:
    """Each user's quota (their override, else the default) in two queries."""
    ids = list(user_ids)
    overrides = {quota.user_id: quota for quota in Quota.objects.filter(user_id__in=ids)}
    default = Quota.objects.get_or_create(user_id=None)[0]
    return {user_id: overrides.get(user_id, default) for user_id in ids}


def budget_burns(user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What each user's live sessions' machines cost per hour right now (users with none are missing)."""
    live = PreviewSession.objects.filter(
        user_id__in=list(user_ids), status__in=LIVE_STATUSES, machine__state__in=BURNING_STATES
    ).select_related("machine")
    burns: dict[uuid.UUID, Decimal] = {}
    for session in live:
        assert session.machine is not None  # noqa: S101  (the filter on its state guarantees it)
        burns[session.user_id] = burns.get(session.user_id, Decimal(0)) + machine_hourly_cost(session.machine)
    return burns


def budget_states(user_ids: Iterable[uuid.UUID], *, now: datetime) -> dict[uuid.UUID, BudgetState]:
    """Each user's month against their budget at ``now`` (a handful of queries for any number of users)."""
    ids = list(user_ids)
    quotas = quotas_for_users(ids)
    spends = spend_of_users(ids, start=month_start(now), end=now, now=now)
    burns = budget_burns(ids)
    return {
        user_id: BudgetState(
            cap_usd=quotas[user_id].monthly_budget_usd,
            spend_usd=spends.get(str(user_id), Decimal(0)),
            burn_usd_per_hour=burns.get(user_id, Decimal(0)),
            now=now,
        )
        for user_id in ids
    }


def budget_spend(user_id: uuid.UUID, *, now: datetime) -> Decimal:
    """The user's exact month-to-date spend (what the budget check acts on)."""
    return spend_of_users([user_id], start=month_start(now), end=now, now=now).get(str(user_id), Decimal(0))


def budget_state_for_user(user_id: uuid.UUID, *, now: datetime) -> BudgetState:
    return budget_states([user_id], now=now)[user_id]


def budget_levels_noticed(user_ids: Iterable[uuid.UUID], *, now: datetime) -> dict[uuid.UUID, set[int]]:
    """The levels already announced this month, per user."""
    rows = BudgetNotice.objects.filter(user_id__in=list(user_ids), month=month_start(now).date())
    noticed: dict[uuid.UUID, set[int]] = {}
    for user_id, level in rows.values_list("user_id", "level"):
        noticed.setdefault(user_id, set()).add(level)
    return noticed


def budget_notice_latest(user_id: uuid.UUID, *, now: datetime) -> BudgetNotice | None:
    """The highest budget level the user reached this month, for the operator's session page; None below 80 %."""
    month = month_start(now).date()
    return BudgetNotice.objects.filter(user_id=user_id, month=month).order_by("-level").first()


BLOCKED_MESSAGE = "New previews are blocked for this account; contact support"


@dataclass(frozen=True)
class QuotaDecision:
    quota: Quota
    usage: Usage
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_create(self) -> bool:
        return not self.reasons


def quota_evaluate(user_id: uuid.UUID, *, now: datetime, memory_mb: int, blocked: bool | None = None) -> QuotaDecision:
    """Every reason a new session would be refused, most pressing first (empty: it would be allowed).

    ``blocked``: whether the user is blocked, when the caller has just read it (under the user's lock); None
    reads it here."""
    quota = quota_for_user(user_id)
    usage = usage_for_user(user_id, now=now)
    reasons = []
    if blocked is None:
        blocked = user_block_for(user_id) is not None
    if blocked:
        reasons.append(_reason("user.blocked", BLOCKED_MESSAGE, None, None))
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
    spent = max(usage.cost_usd, budget_spend(user_id, now=now).quantize(Decimal("0.0001")))
    if spent >= quota.monthly_budget_usd:
        reasons.append(
            _reason("quota.monthly_budget", "this month's budget is spent", str(spent), str(quota.monthly_budget_usd))
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


# --- agent log lines and file-sync events kept per session (sessions.services.traces) ----------


def trace_sessions_by_project(project_ids: Iterable[str], *, now: datetime) -> dict[str, list[uuid.UUID]]:
    """Whose records a project's broadcasts become: its live sessions (the agents on that channel), or when
    none is live, those that ended within ``TRACE_ENDED_GRACE`` (an agent's last lines before it died)."""
    recent = Q(status__in=LIVE_STATUSES) | Q(ended_at__gte=now - TRACE_ENDED_GRACE)
    rows = PreviewSession.objects.filter(recent, project_id__in=list(project_ids)).values_list(
        "project_id", "id", "status"
    )
    live: dict[str, list[uuid.UUID]] = {}
    ended: dict[str, list[uuid.UUID]] = {}
    for project_id, session_id, status in rows:
        (live if status in LIVE_STATUSES else ended).setdefault(project_id, []).append(session_id)
    return {project: live.get(project) or ended[project] for project in {*live, *ended}}


def live_sessions_by_project(project_ids: Iterable[str]) -> dict[str, list[uuid.UUID]]:
    """The live sessions of each project (whose activity minutes a project's edits become)."""
    rows = PreviewSession.objects.filter(status__in=LIVE_STATUSES, project_id__in=list(project_ids))
    found: dict[str, list[uuid.UUID]] = {}
    for project_id, session_id in rows.values_list("project_id", "id"):
        found.setdefault(project_id, []).append(session_id)
    return found


def session_traces(session_id: uuid.UUID, *, kind: str, limit: int) -> list[SessionTrace]:
    """A session's newest ``limit`` records of one kind, oldest first (newest last)."""
    newest = SessionTrace.objects.filter(session_id=session_id, kind=kind).order_by("-at", "-id")[:limit]
    return list(reversed(newest))


@dataclass(frozen=True)
class SyncBacklog:
    """File updates the agent has not answered: how many, and since when (None when there are none)."""

    count: int
    oldest_at: datetime | None

    def seconds(self, now: datetime) -> int:
        """For how long the oldest has waited, in whole seconds (0 with no backlog)."""
        return 0 if self.oldest_at is None else max(0, int((now - self.oldest_at).total_seconds()))


def sync_backlog(session_id: uuid.UUID, *, now: datetime) -> SyncBacklog:
    """The session's unacknowledged file updates among its kept sync events seen up to ``now``.

    A ``file:update`` or ``file:delete`` of a path at version v waits until the agent answers it: a
    ``file:synced`` of that path (or an entry of a ``files:synced``) at a version >= v, or the ``agent:error``
    refusing it; a ``files:snapshot`` waits for a ``files:synced`` or its refusal. The agent handles broadcasts
    in order, so an answer also settles every update seen before the one it answers (those it ignored as
    stale, or missed); an update at or below a version already acknowledged for its path is stale and never
    waits; an ``agent:manifest`` after a (re)join settles everything before it (what the agent missed is the
    editor's to resend, see docs/agent.md). Whatever is left waits: a live agent answers within a second, so
    a backlog that grows older means the agent is hung or cut off from the channel.

    Returns ``SyncBacklog(count, oldest_at)``: how many wait, and when the oldest was seen (None if none).
    """
    return sync_backlogs([session_id], now=now)[session_id]


def sync_backlogs(session_ids: Iterable[uuid.UUID], *, now: datetime) -> dict[uuid.UUID, SyncBacklog]:
    """``sync_backlog`` of several sessions in one query (the agent watch's round), every id answered."""
    ids = list(session_ids)
    records: dict[uuid.UUID, list[tuple[str, dict[str, Any], datetime]]] = {session_id: [] for session_id in ids}
    rows = (
        SessionTrace.objects.filter(session_id__in=ids, kind=TraceKind.SYNC, at__lte=now)
        .order_by("at", "id")
        .values_list("session_id", "event", "data", "at")
    )
    for session_id, event, data, at in rows:
        records[session_id].append((event, data, at))
    return {session_id: sync_backlog_of(kept) for session_id, kept in records.items()}


UPDATE_EVENTS = ("file:update", "file:delete")


@dataclass(frozen=True)
class _Waiting:
    index: int
    event: str
    path: Any
    version: Any
    at: datetime


def sync_backlog_of(records: Iterable[tuple[str, dict[str, Any], datetime]]) -> SyncBacklog:
    """The pure core of ``sync_backlog``: ``records`` are (event, data, at), oldest first."""
    acked: dict[str, int] = {}
    waiting: list[_Waiting] = []
    for index, (event, data, at) in enumerate(records):
        item = _Waiting(index, event, data.get("path"), data.get("version"), at)
        if event in (*UPDATE_EVENTS, "files:snapshot"):
            if not _acked(acked, item.path, item.version):  # else stale: the agent ignores it, no answer
                waiting.append(item)
        elif event == "agent:manifest" and data.get("reason") == "join":
            waiting = []
        else:
            waiting = _after_answer(waiting, event, data, acked)
    return SyncBacklog(count=len(waiting), oldest_at=min((item.at for item in waiting), default=None))


def _after_answer(waiting: list[_Waiting], event: str, data: dict[str, Any], acked: dict[str, int]) -> list[_Waiting]:
    """What still waits after one of the agent's answers: the items it answers and all before them are settled."""
    acks = [[data.get("path"), data.get("version")]] if event == "file:synced" else []
    acks += (data.get("files") or []) if event == "files:synced" else []
    for path, version in acks:
        if isinstance(path, str) and isinstance(version, int):
            acked[path] = max(version, acked.get(path, version))
    answered = [item.index for item in waiting if _answers(item, event, data, acks)]
    return [item for item in waiting if item.index > max(answered)] if answered else waiting


def _answers(item: _Waiting, event: str, data: dict[str, Any], acks: list[list[Any]]) -> bool:
    if item.event == "files:snapshot":
        return event == "files:synced" or (event == "agent:error" and data.get("event") == "files:snapshot")
    if event == "agent:error":
        return (data.get("event"), data.get("path"), str(data.get("version"))) == (
            item.event,
            item.path,
            str(item.version),
        )
    return any(path == item.path and _covers(version, item.version) for path, version in acks)


def _covers(acked: Any, version: Any) -> bool:
    return isinstance(acked, int) and isinstance(version, int) and acked >= version


def _acked(acked: dict[str, Any], path: Any, version: Any) -> bool:
    """Has ``path`` been acknowledged at ``version`` or newer?"""
    return isinstance(path, str) and _covers(acked.get(path), version)


def sessions_stuck_creating(*, now: datetime, older_than: float) -> QuerySet[PreviewSession]:
    """Sessions still ``creating`` ``older_than`` seconds after they were asked for, oldest first: a
    provisioning task that never ran (the cluster is down or backed up) or a launch that hangs."""
    cutoff = now - timedelta(seconds=older_than)
    return PreviewSession.objects.filter(status=SessionStatus.CREATING, created_at__lt=cutoff).order_by("created_at")

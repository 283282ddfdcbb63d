"""Every periodic job, declared once. ``manage.py sync_schedules`` makes django-q2's table match this list.

Each job is a plain idempotent function (a dotted path) that is safe to run twice and on two instances at
once; ``manage.py sweep`` runs them immediately.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    minutes: int
    description: str


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(
        name="cleanup_expired_sessions",
        func="sessions.tasks.cleanup_expired_sessions",
        minutes=5,
        description="End every live session past its expires_at (the seed's 5-minute cleanup job).",
    ),
    ScheduleSpec(
        name="reap_idle_sessions",
        func="sessions.tasks.reap_idle_sessions",
        minutes=1,
        description="End sessions idle longer than the live idle timeout (PREVIEW_INACTIVITY_TIMEOUT, the seed's "
        "30 minutes, unless a policy applied from the dry-run lowered it).",
    ),
    ScheduleSpec(
        name="enforce_budgets",
        func="sessions.tasks.enforce_budgets",
        minutes=1,
        description="Warn users at 80 % and 95 % of their monthly budget (once each a month) and end their live "
        "sessions (reason budget) at 100 %: month-to-date spend, running machines included.",
    ),
    ScheduleSpec(
        name="watch_agents",
        func="sessions.tasks.watch_agents",
        minutes=1,
        description="Judge every active session's agent (the worker's watch_agents loop does it every "
        "AGENT_WATCH_INTERVAL_SECONDS; this is its backstop, idle while the loop holds the lease).",
    ),
    ScheduleSpec(
        name="reconcile_machines",
        func="machines.tasks.reconcile_machines",
        minutes=1,
        description="Destroy orphans at the provider, bury ghosts here, finish stuck destroys; keep the report.",
    ),
    ScheduleSpec(
        name="refill_warm_pool",
        func="machines.tasks.refill_warm_pool",
        minutes=1,
        description="Bring the warm pool to its target: demand within WARM_POOL_MIN..MAX, under the budget "
        "(also enqueued after each claim).",
    ),
    ScheduleSpec(
        name="rollup_costs",
        func="machines.tasks.rollup_costs",
        minutes=5,
        description="Recompute today's and yesterday's cost per user and per day from the machine events.",
    ),
    ScheduleSpec(
        name="prune_session_activity",
        func="sessions.tasks.prune_session_activity",
        minutes=24 * 60,
        description="Delete sessions' activity minutes older than SESSION_ACTIVITY_RETENTION_DAYS "
        "(the dry-run's history).",
    ),
    ScheduleSpec(
        name="prune_webhooks",
        func="webhooks.tasks.prune_webhooks",
        minutes=60,
        description="Delete webhook messages older than WEBHOOKS_KEEP_DAYS whose deliveries are all finished.",
    ),
)


def schedule_by_name(name: str) -> ScheduleSpec:
    for spec in SCHEDULES:
        if spec.name == name:
            return spec
    raise KeyError(name)

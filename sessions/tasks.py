"""django-q2 jobs: plain, idempotent functions that take ids, call one service and return a one-line summary."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils import timezone

from realtime_bridge.services import lease_acquire, lease_release
from sessions import services
from sessions.policy_selectors import idle_timeout_seconds


def provision_session(session_id: str) -> str:
    return services.session_provision(session_id=session_id, now=timezone.now())


def cleanup_expired_sessions() -> str:
    now = timezone.now()
    ended = services.session_end_expired(now=now)
    stuck = services.session_fail_stuck(now=now, timeout=settings.PROVISION_TIMEOUT)
    return f"ended {ended} expired session(s); failed {stuck} stuck in creating"


def reap_idle_sessions() -> str:
    reaped = services.session_reap_idle(now=timezone.now(), idle_timeout=idle_timeout_seconds())
    return f"ended {reaped} idle session(s)"


def enforce_budgets() -> str:
    counts = services.budgets_enforce(now=timezone.now())
    return (
        f"budgets: {counts['checked']} user(s) checked, {counts['warned']} warned, {counts['ended']} session(s) ended"
    )


AGENT_WATCH_LEASE = "agent-watch"


def watch_agents() -> str:
    """One round of the agent watch, unless the worker's ``watch_agents`` loop holds the lease (it acts then)."""
    return agent_watch_round(holder=f"sweep:{uuid.uuid4().hex[:8]}", ttl=settings.AGENT_STALE_SECONDS, release=True)


def agent_watch_round(*, holder: str, ttl: float, release: bool = False, act: bool = True) -> str:
    """Judge and act on every active session's agent while holding the lease; a one-line summary."""
    try:
        if act and not lease_acquire(name=AGENT_WATCH_LEASE, holder=holder, ttl=ttl, now=timezone.now()):
            return "agent watch: another instance holds the lease"
        counts = services.agents_watch() if act else {}
        handed_back = _hand_back_undelivered() if act else 0
    finally:
        if release:
            lease_release(name=AGENT_WATCH_LEASE, holder=holder)
    summary = ", ".join(f"{count} {action}" for action, count in sorted(counts.items()))
    undelivered = f"; {handed_back} warm claim(s) not picked up, provisioning again" if handed_back else ""
    return f"agent watch: {summary or 'no active sessions'}{undelivered}"


def _hand_back_undelivered() -> int:
    """The warm agents that never picked up their claim (``WARM_PICKUP_SECONDS``): the watch's other half."""
    return services.session_reprovision_undelivered(now=timezone.now(), timeout=settings.WARM_PICKUP_SECONDS)


def prune_session_activity() -> str:
    pruned = services.session_activity_prune(now=timezone.now())
    return f"pruned {pruned} activity minute(s) older than {settings.SESSION_ACTIVITY_RETENTION_DAYS} days"

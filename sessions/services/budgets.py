"""Budgets that act: the scheduled check warns a user at 80 % and 95 % of their monthly budget and ends their
live sessions (reason ``budget``) at 100 %. The decisions are ``sessions.budgets``'s; this is their effect.

Safe on two instances at once: a warning is claimed by inserting its ``BudgetNotice`` (unique per user, month
and level; only the inserter announces it), and ``session_end`` ends each session once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from machines.models import EventSource
from realtime_bridge import events, publish
from sessions import selectors
from sessions.budgets import BudgetDecision, BudgetState, budget_decide, month_start
from sessions.models import LIVE_STATUSES, BudgetNotice, EndReason, PreviewSession
from sessions.services.lifecycle import session_end
from sessions.signals import budget_warning
from velocity.audit import audit

logger = logging.getLogger(__name__)

BUDGET_ACTOR = "system:budget"
CENT = Decimal("0.01")


def budgets_enforce(*, now: datetime) -> dict[str, int]:
    """One round of the budget check over every user whose spend may have moved; counts of what it did."""
    users = selectors.budget_users_to_check(now=now)
    states = selectors.budget_states(users, now=now)
    noticed = selectors.budget_levels_noticed(users, now=now)
    live = _live_sessions_by_user(users)
    counts = {"checked": len(users), "warned": 0, "ended": 0}
    for user_id in users:
        sessions = live.get(user_id, [])
        decision = budget_decide(states[user_id], noticed=noticed.get(user_id, set()), live_sessions=len(sessions))
        warned, ended = user_budget_act(user_id=user_id, state=states[user_id], decision=decision, sessions=sessions)
        counts["warned"] += warned
        counts["ended"] += ended
    return counts


def user_budget_act(
    *, user_id: uuid.UUID, state: BudgetState, decision: BudgetDecision, sessions: list[PreviewSession]
) -> tuple[bool, int]:
    """Carry out one user's decision: end their sessions at 100 %, then record and announce a new level.
    Returns (whether this call announced a warning, how many sessions it ended)."""
    ended = [s for s in sessions if _end_for_budget(s, state=state)] if decision.end_sessions else []
    announce = _notices_record(user_id=user_id, state=state, decision=decision)
    if announce is not None:
        _budget_announce(user_id=user_id, level=announce, state=state, sessions=ended or sessions)
    return announce is not None, len(ended)


def _live_sessions_by_user(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PreviewSession]]:
    live: dict[uuid.UUID, list[PreviewSession]] = {}
    rows = PreviewSession.objects.filter(user_id__in=user_ids, status__in=LIVE_STATUSES).order_by("created_at")
    for session in rows:
        live.setdefault(session.user_id, []).append(session)
    return live


def _end_for_budget(session: PreviewSession, *, state: BudgetState) -> bool:
    """End one session through the one end service (its machine destroyed, announced) and audit it."""
    before = {"status": session.status}
    figures = {"spend_usd": _money(state.spend_usd), "cap_usd": _money(state.cap_usd)}
    detail = f"monthly budget spent: ${figures['spend_usd']} of ${figures['cap_usd']}"
    ended = session_end(
        session=session, reason=EndReason.BUDGET, now=state.now, detail=detail, source=EventSource.SCHEDULE
    )
    if ended:
        after = {"status": session.status, "end_reason": session.end_reason, **figures}
        audit(actor=None, actor_label=BUDGET_ACTOR, action="session.end", target=session, before=before, after=after)
    return ended


def _notices_record(*, user_id: uuid.UUID, state: BudgetState, decision: BudgetDecision) -> int | None:
    """Insert the new levels' notices; the level to announce, if this call (not a racing one) inserted it."""
    if not decision.record:
        return None
    month = month_start(state.now).date()
    announce = None
    with transaction.atomic():
        for level in decision.record:
            _, created = BudgetNotice.objects.get_or_create(
                user_id=user_id,
                month=month,
                level=level,
                defaults={"spend_usd": state.spend_usd.quantize(Decimal("0.000001")), "cap_usd": state.cap_usd},
            )
            if created and level == decision.announce:
                announce = level
    return announce


def _budget_announce(*, user_id: uuid.UUID, level: int, state: BudgetState, sessions: list[PreviewSession]) -> None:
    """The ops event (one per session, so each session page hears it) and the ``budget_warning`` signal."""
    spend, cap = _money(state.spend_usd), _money(state.cap_usd)
    shapes = [{"session_id": str(s.id), "project_id": s.project_id} for s in sessions]
    for shape in shapes or [{}]:
        publish.publish_on_commit(
            events.session_budget(user_id=str(user_id), level=level, spend_usd=spend, cap_usd=cap, **shape)
        )
    logger.info("budget level reached", extra={"user_id": str(user_id), "level": level, "spend_usd": spend})
    signal: dict[str, Any] = {
        "user_id": user_id,
        "level": level,
        "month": month_start(state.now).date(),
        "spend_usd": state.spend_usd,
        "cap_usd": state.cap_usd,
        "at": state.now,
        "sessions": shapes,
    }
    transaction.on_commit(lambda: _send_warning(signal))


def _send_warning(signal: dict[str, Any]) -> None:
    for receiver, result in budget_warning.send_robust(sender=None, **signal):
        if isinstance(result, Exception):
            logger.error("budget_warning receiver failed", extra={"receiver": repr(receiver), "error": str(result)})


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))

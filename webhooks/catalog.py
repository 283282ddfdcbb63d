"""Which operator events become webhooks, under which type, and their bodies (pure: no database).

A session's row is announced on every change (``session.status``); its lifecycle steps become
``session.created`` / ``active`` / ``ended`` / ``failed``, each once per session (the dedupe key). Other
event kinds pass through under their own name (``machine.orphan_destroyed``, the budget warnings'
``session.budget``, once per user, level and month, and any kind an app adds later), except the live-view
traffic below, which is too frequent to be worth a webhook.
"""

from __future__ import annotations

from typing import Any

from realtime_bridge.events import Event

EVENT_TYPES = {
    "session.created": "A session was requested (status creating).",
    "session.active": "A session's preview is up (status active, with its preview_url).",
    "session.ended": "A session ended; data.end_reason says why (expired, idle, user, operator, quota, budget...).",
    "session.failed": "A session failed to start or its machine failed.",
    "session.budget": "A user's month-to-date spend crossed 80, 95 or 100 % of their budget.",
    "machine.orphan_destroyed": "Reconciliation destroyed a machine the provider ran that the database did not know.",
}
LIVE_VIEW_ONLY = frozenset({"realtime.message", "session.health", "machine.state"})
SESSION_STEPS = {"creating": "session.created", "active": "session.active", "ended": "session.ended"}
SESSION_STEPS["failed"] = "session.failed"


def webhook_type(event: Event) -> tuple[str, str | None] | None:
    """The webhook type of ``event`` and its dedupe key (None: every occurrence is a message), or None when the
    event is not sent as a webhook."""
    if event.kind == "session.status":
        step = SESSION_STEPS.get(str(event.data.get("status")))
        return (step, f"{step}:{event.session_id}") if step else None
    if event.kind in LIVE_VIEW_ONLY:
        return None
    if event.kind == "session.budget":
        return event.kind, budget_key(event)
    return event.kind, None


def budget_key(event: Event) -> str | None:
    """One budget warning per user, level and month: the budget check announces it once per live session of the
    user (for the operator views), a receiver wants it once."""
    user, level = event.data.get("user_id"), event.data.get("level")
    return f"session.budget:{user}:{level}:{event.at[:7]}" if user and level else None


def webhook_body(event_type: str, event: Event) -> dict[str, Any]:
    """The Standard Webhooks body: ``{"type", "timestamp", "data"}``."""
    data = dict(event.data)
    if event.project_id and "project_id" not in data:
        data["project_id"] = event.project_id
    if event.session_id and "session_id" not in data:
        data["session_id"] = event.session_id
    return {"type": event_type, "timestamp": event.at, "data": data}

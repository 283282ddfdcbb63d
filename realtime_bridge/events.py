"""The event vocabulary: event shapes, topic and group names. A leaf: it imports nothing of the project.

Services build an `Event` with one of the constructors below and hand it to `realtime_bridge.publish`;
operator consumers receive them as `{"type": "ops.event", "event": ...}` on the `ops` group and on the
project's and session's groups. `row_change` is a `postgres_changes` data map as Realtime sends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TOPIC_PREFIX = "realtime:"  # a channel's name on the wire: `realtime:project:abc`
OPS_GROUP = "ops"
PROJECT_TOPIC_PREFIX = "project:"
USER_TOPIC_PREFIX = "user:"
PG_GROUP = "rt.pg"


def project_topic(project_id: str) -> str:
    """The realtime channel of one project (what the editor and the agent join)."""
    return f"{PROJECT_TOPIC_PREFIX}{project_id}"


def user_topic(user_id: str) -> str:
    """A user's own channel (``user:{sub}``): their `postgres_changes`, joinable before any session exists."""
    return f"{USER_TOPIC_PREFIX}{user_id}"


def _now_iso() -> str:
    return datetime.now(tz=UTC).isoformat()


def project_group(project_id: str) -> str:
    """Group of one project's operator view (project ids are free-form, so hashed)."""
    digest = hashlib.sha1(str(project_id).encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"ops.project.{digest}"


def session_group(session_id: str) -> str:
    return f"ops.session.{session_id}"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    project_id: str | None = None
    session_id: str | None = None
    at: str = field(default_factory=_now_iso)

    def groups(self) -> list[str]:
        groups = [OPS_GROUP]
        if self.project_id:
            groups.append(project_group(self.project_id))
        if self.session_id:
            groups.append(session_group(self.session_id))
        return groups

    def message(self) -> dict[str, Any]:
        """A shallow dict: ``asdict``'s deep copy was a fifth of mirroring each project broadcast, and the
        channel layer copies (in memory) or serializes (Redis) the message anyway."""
        event = {"kind": self.kind, "data": self.data, "project_id": self.project_id, "session_id": self.session_id}
        return {"type": "ops.event", "event": {**event, "at": self.at}}


# --- shapes ------------------------------------------------------------------------------------


def session_status(
    *,
    session_id: str,
    project_id: str,
    status: str,
    preview_url: str | None = None,
    end_reason: str | None = None,
    user_id: str | None = None,
) -> Event:
    data = {"session_id": str(session_id), "status": status, "preview_url": preview_url}
    if end_reason:
        data["end_reason"] = end_reason
    if user_id:
        data["user_id"] = str(user_id)
    return Event("session.status", data, project_id=str(project_id), session_id=str(session_id))


def session_health(*, session_id: str, project_id: str, health: str, detail: str, action: str) -> Event:
    """The agent watch's verdict on a session changed (``action``: ok, degraded, restart, fail)."""
    data = {"session_id": str(session_id), "health": health, "detail": detail, "action": action}
    return Event("session.health", data, project_id=str(project_id), session_id=str(session_id))


def machine_state(
    *,
    machine_id: str,
    state: str,
    source: str,
    session_id: str | None = None,
    project_id: str | None = None,
) -> Event:
    data = {"machine_id": str(machine_id), "state": state, "source": source}
    session = str(session_id) if session_id else None
    project = str(project_id) if project_id else None
    return Event("machine.state", data, project_id=project, session_id=session)


def session_budget(
    *,
    user_id: str,
    level: int,
    spend_usd: str,
    cap_usd: str,
    session_id: str | None = None,
    project_id: str | None = None,
) -> Event:
    """A user's month-to-date spend reached ``level`` percent (80, 95, 100) of their monthly budget; at 100 their
    live sessions end (reason ``budget``). One event per live session of the user (on its session's and
    project's groups too), or one with neither when nothing of theirs runs. Money as decimal strings."""
    session = str(session_id) if session_id else None
    project = str(project_id) if project_id else None
    data = {
        "user_id": str(user_id),
        "level": level,
        "spend_usd": spend_usd,
        "cap_usd": cap_usd,
        "session_id": session,
        "project_id": project,
    }
    return Event("session.budget", data, project_id=project, session_id=session)


def machine_orphan_destroyed(
    *,
    provider_machine_id: str,
    reason: str,
    hourly_cost_usd: str,
    cost_so_far_usd: str,
    machine_id: str | None = None,
    session_id: str | None = None,
) -> Event:
    """Reconciliation destroyed a machine the provider ran for us that the database did not know (or had ended)."""
    data = {
        "provider_machine_id": str(provider_machine_id),
        "machine_id": str(machine_id) if machine_id else None,
        "session_id": str(session_id) if session_id else None,
        "reason": reason,
        "hourly_cost_usd": hourly_cost_usd,
        "cost_so_far_usd": cost_so_far_usd,
    }
    return Event("machine.orphan_destroyed", data, session_id=data["session_id"])


def realtime_message(*, project_id: str, event: str, data: dict[str, Any]) -> Event:
    """A broadcast seen on `project:{id}`, summarised (file contents are never forwarded)."""
    return Event("realtime.message", {"event": event, **data}, project_id=project_id)


def row_change(
    *,
    table: str,
    change_type: str,
    columns: list[dict[str, str]],
    record: dict[str, Any] | None = None,
    old_record: dict[str, Any] | None = None,
    schema: str = "public",
) -> dict[str, Any]:
    """A `postgres_changes` data map as Realtime sends it (section 7 of the reference)."""
    stamp = datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data: dict[str, Any] = {
        "schema": schema,
        "table": table,
        "commit_timestamp": stamp,
        "type": change_type,
        "columns": columns,
        "errors": None,
    }
    if record is not None:
        data["record"] = record
    if old_record is not None:
        data["old_record"] = old_record
    return data

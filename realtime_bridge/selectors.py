"""Reads for the realtime endpoint and the operator views; the channel authorization rule."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from sessions.models import PreviewSession
from velocity.auth import Claims

SERVICE_ROLE = "service_role"
PROJECT_PREFIX = "project:"
LIVE_STATUSES = ("creating", "active")
AGENT_PROJECT_CLAIM = "velocity_project"


def embedded_endpoint_enabled() -> bool:
    """The endpoint serves when no Supabase project is configured (or when forced on)."""
    return not settings.SUPABASE_URL or bool(getattr(settings, "REALTIME_EMBEDDED_ALWAYS", False))


def agent_project(claims: Claims) -> str | None:
    """The project a preview agent's token is scoped to (None for other tokens)."""
    project = claims.claims.get(AGENT_PROJECT_CLAIM)
    return str(project) if project else None


def channel_authorize(claims: Claims, topic: str) -> bool:
    """May these claims join `topic` (the channel name, without `realtime:`)?

    Service role: anything. A preview agent's token: only `project:{its project}`. A user:
    `project:{id}` while they own a live (creating/active) session of it. Nothing else.
    """
    if claims.role == SERVICE_ROLE:
        return True
    if not topic.startswith(PROJECT_PREFIX):
        return False
    project_id = topic.removeprefix(PROJECT_PREFIX)
    scoped = agent_project(claims)
    if scoped is not None:
        return scoped == project_id
    if claims.sub is None or not project_id:
        return False
    return PreviewSession.objects.filter(user_id=claims.sub, project_id=project_id, status__in=LIVE_STATUSES).exists()


def row_visible(claims: Claims, row: Mapping[str, Any]) -> bool:
    """May these claims see this `preview_sessions` row in `postgres_changes`? (no query)"""
    if claims.role == SERVICE_ROLE:
        return True
    scoped = agent_project(claims)
    if scoped is not None:
        return str(row.get("project_id")) == scoped
    return claims.sub is not None and str(row.get("user_id")) == str(claims.sub)


def live_sessions(*, limit: int = 200) -> list[dict[str, Any]]:
    """The operator snapshot: live sessions, newest first."""
    rows = (
        PreviewSession.objects.filter(status__in=LIVE_STATUSES)
        .order_by("-created_at")
        .values("id", "user_id", "project_id", "status", "preview_url", "framework", "created_at")
    )
    return [_jsonable(row) for row in rows[:limit]]


def session_snapshot(session_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        PreviewSession.objects.filter(pk=session_id)
        .values(
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
        .first()
    )
    return None if row is None else _jsonable(row)


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def live_project_topics() -> set[str]:
    """`project:{id}` for every project with a live session (what the bridge mirrors)."""
    projects = PreviewSession.objects.filter(status__in=LIVE_STATUSES).values_list("project_id", flat=True)
    return {f"{PROJECT_PREFIX}{project}" for project in projects.distinct()}

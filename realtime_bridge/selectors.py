"""Reads for the realtime endpoint and the operator views."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from sessions.models import PreviewSession

PROJECT_PREFIX = "project:"
LIVE_STATUSES = ("creating", "active")


def embedded_endpoint_enabled() -> bool:
    """The endpoint serves when no Supabase project is configured (or when forced on)."""
    return not settings.SUPABASE_URL or settings.REALTIME_EMBEDDED_ALWAYS


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

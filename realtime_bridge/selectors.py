"""Reads for the realtime endpoint; the row visibility rule of `postgres_changes`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from sessions.models import PreviewSession
from velocity.auth import Claims

PROJECT_PREFIX = "project:"
LIVE_STATUSES = ("creating", "active")


def embedded_endpoint_enabled() -> bool:
    """The endpoint serves when no Supabase project is configured (or when forced on)."""
    return not settings.SUPABASE_URL or bool(getattr(settings, "REALTIME_EMBEDDED_ALWAYS", False))


def row_visible(claims: Claims, row: Mapping[str, Any]) -> bool:
    """May these claims see this `preview_sessions` row in `postgres_changes`? The seed's RLS, no query:
    the service role sees every row, a user their own (`auth.uid() = user_id`), anyone else none (a
    preview agent's key included: it speaks for a machine, not a user)."""
    if claims.is_service_role:
        return True
    if claims.is_agent or claims.role != "authenticated" or claims.sub is None:
        return False
    return str(row.get("user_id")) == str(claims.sub)


def live_project_topics() -> set[str]:
    """`project:{id}` for every project with a live session (what the bridge mirrors)."""
    projects = PreviewSession.objects.filter(status__in=LIVE_STATUSES).values_list("project_id", flat=True)
    return {f"{PROJECT_PREFIX}{project}" for project in projects.distinct()}

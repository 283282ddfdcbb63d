"""Reads for the realtime endpoint."""

from __future__ import annotations

from django.conf import settings


def embedded_endpoint_enabled() -> bool:
    """The endpoint serves when no Supabase project is configured (or when forced on)."""
    return not settings.SUPABASE_URL or settings.REALTIME_EMBEDDED_ALWAYS

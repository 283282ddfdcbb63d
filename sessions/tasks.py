"""django-q2 jobs: plain, idempotent functions that call one service and return a one-line summary."""

from __future__ import annotations

from django.utils import timezone

from sessions.services import session_end_expired


def cleanup_expired_sessions() -> str:
    return f"ended {session_end_expired(now=timezone.now())} expired session(s)"

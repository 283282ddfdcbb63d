"""django-q2 jobs: plain, idempotent functions that take ids, call one service and return a one-line summary."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from sessions import services


def provision_session(session_id: str) -> str:
    return services.session_provision(session_id=session_id, now=timezone.now())


def cleanup_expired_sessions() -> str:
    now = timezone.now()
    ended = services.session_end_expired(now=now)
    stuck = services.session_fail_stuck(now=now, timeout=settings.PROVISION_TIMEOUT)
    return f"ended {ended} expired session(s); failed {stuck} stuck in creating"


def reap_idle_sessions() -> str:
    reaped = services.session_reap_idle(now=timezone.now(), idle_timeout=settings.PREVIEW_INACTIVITY_TIMEOUT)
    return f"ended {reaped} idle session(s)"

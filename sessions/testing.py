"""Test support for the sessions app: state built through the services the real flow uses.

Registered by the root conftest (``pytest_plugins``) so that, in every test, session traces are written only
when a test calls ``traces_flush`` (no writer thread touching the test database behind its back).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from machines.models import EventSource, Machine, MachineState
from machines.services import machine_prepare, machine_transition
from sessions.models import PreviewSession
from sessions.services import session_activate, session_create, session_end_expired, session_mark_step
from sessions.services.activity import activity_write_in_background
from sessions.services.traces import traces_write_in_background
from velocity.auth import user_claims


def live_session(
    *, project: str = "demo", user_id: uuid.UUID | None = None, now: datetime | None = None
) -> PreviewSession:
    """An active session with a started machine (the provider step left out: nothing to run)."""
    now = now or timezone.now()
    user = user_id or uuid.uuid4()
    session, _ = session_create(claims=user_claims(user), user_id=user, project_id=project, memory_mb=512, now=now)
    machine, _spec = machine_prepare(session=session, memory_mb=512)
    PreviewSession.objects.filter(id=session.id).update(machine=machine, machine_created_at=machine.created_at)
    started(machine)
    session_mark_step(session_id=session.id, step="machine_started_at", now=timezone.now())
    session_activate(session=session, preview_url="http://127.0.0.1:1/", boot_timings={}, now=timezone.now())
    session.refresh_from_db()
    return session


@database_sync_to_async
def expired_session(user: uuid.UUID, project_id: str) -> PreviewSession:
    """A live session whose ``expires_at`` has passed: the expiry sweep's to end."""
    now = timezone.now()
    return PreviewSession.objects.create(
        user_id=user, project_id=project_id, status="active", expires_at=now - timedelta(minutes=1)
    )


@database_sync_to_async
def expiry_sweep() -> int:
    """One run of the expiry sweep, now."""
    return session_end_expired(now=timezone.now())


def started(machine: Machine) -> None:
    machine_transition(machine=machine, to_state=MachineState.STARTING, source=EventSource.PROVIDER)
    machine_transition(machine=machine, to_state=MachineState.STARTED, source=EventSource.PROVIDER)


def _tests_flush_traces_themselves() -> None:
    traces_write_in_background(False)
    activity_write_in_background(False)


_tests_flush_traces_themselves()

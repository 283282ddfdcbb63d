"""The two waits of the warm path, on ``velocity.wakeup``: a warm agent's held assignment request waits for the
create that claims its machine, and that create waits (briefly) for the agent's ``ready``.

Each side re-reads the database every ``recheck`` seconds too, so a wake-up that is lost, or that happens in
another web process, costs one interval, not the wait.
"""

from __future__ import annotations

import uuid

from sessions import selectors
from sessions.models import PreviewSession, SessionStatus
from velocity import wakeup
from velocity.db_pool import release_if_pooled


def _assignment_key(machine_id: uuid.UUID) -> str:
    return f"assignment:{machine_id}"


def _ready_key(session_id: uuid.UUID) -> str:
    return f"session-ready:{session_id}"


def assignment_wake(machine_id: uuid.UUID) -> None:
    """A session claimed the machine (called on commit): answer its agent's held request now."""
    wakeup.wake(_assignment_key(machine_id))


def ready_wake(session_id: uuid.UUID) -> None:
    """The session became active (called on commit): answer the create that waits for it now."""
    wakeup.wake(_ready_key(session_id))


def assignment_wait(machine_id: uuid.UUID, *, timeout: float, recheck: float) -> PreviewSession | None:
    """The live session that claimed the machine, as soon as there is one; None after ``timeout`` seconds. With a
    connection pool, the connection goes back to it between checks."""
    return wakeup.wait_for(
        lambda: _released_after(selectors.session_assigned_to_machine(machine_id)),
        key=_assignment_key(machine_id),
        timeout=timeout,
        recheck=recheck,
    )


def _released_after(session: PreviewSession | None) -> PreviewSession | None:
    release_if_pooled()
    return session


def ready_wait(session_id: uuid.UUID, *, timeout: float, recheck: float) -> PreviewSession | None:
    """The session once it is no longer ``creating`` (active, or ended); None if it still is after ``timeout``."""
    return wakeup.wait_for(
        lambda: PreviewSession.objects.exclude(status=SessionStatus.CREATING).filter(id=session_id).first(),
        key=_ready_key(session_id),
        timeout=timeout,
        recheck=recheck,
    )

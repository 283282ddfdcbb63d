"""Creating a session: project access, the quota, the row, and a machine.

A warm machine of the right size is claimed inside the create's transaction (its agent is woken on commit, no
task queue in between); only without one is provisioning queued, on commit, for a new machine.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from machines.services import machine_pool_enqueue_refill
from sessions.access import project_check_use, project_claim
from sessions.changes import announced_together, session_status_announce
from sessions.models import LEGACY_FRAMEWORK, EndReason, PreviewSession, SessionStatus, UserBlock
from sessions.selectors import (
    BLOCKED_MESSAGE,
    PreviewRoute,
    QuotaDecision,
    preview_route_for,
    quota_evaluate,
    session_live_for_project,
    session_ttl_seconds,
    user_block_and_live_session,
)
from sessions.services.lifecycle import session_end
from sessions.services.provisioning import session_enqueue_provisioning, session_warm_machine_for_new
from velocity import metrics
from velocity.auth import Claims
from velocity.locks import transaction_lock

logger = logging.getLogger(__name__)


class UserBlocked(Exception):
    """An operator blocked the user's new previews (``UserBlock``)."""

    def __init__(self, block: UserBlock) -> None:
        super().__init__(BLOCKED_MESSAGE)
        self.block = block


def _refuse_blocked_or_live(user_id: uuid.UUID, project_id: str) -> PreviewSession | None:
    """Refuse a blocked user; else the user's live session for the project, if any (one round trip for both)."""
    block, live = user_block_and_live_session(user_id, project_id)
    if block is not None:
        raise UserBlocked(block)
    return live


class QuotaExceeded(Exception):
    def __init__(self, decision: QuotaDecision) -> None:
        super().__init__(decision.reasons[0]["message"])
        self.decision = decision


def lock_user(user_id: uuid.UUID) -> None:
    """Serialize one user's creates (and an operator's block of the user), so the quota is counted once per
    create and a block is never overtaken by a create that began before it."""
    transaction_lock(f"user-creates:{user_id}")


def _enqueue_provisioning(session_id: uuid.UUID) -> None:
    session_enqueue_provisioning(session_id)


def session_create(
    *, claims: Claims, user_id: uuid.UUID, project_id: str, memory_mb: int, now: datetime
) -> tuple[PreviewSession, bool]:
    """The user's live session for the project, or a new one (``True``): given a warm machine at once when the
    pool has one of its size, queued for provisioning otherwise.

    Raises ``UserBlocked`` when an operator blocked the user (checked first, and again under the user's lock),
    ``ProjectForbidden`` unless ``claims`` may use the project (an id nobody holds is claimed for
    the caller in the same transaction as the session), ``QuotaExceeded`` with every reason when the quota
    refuses; nothing is written then.
    When the rollback flags route the caller to the legacy previews, the session is an active one pointing
    at the Appetize app, and no machine is made. A live session of the other kind is ended first.
    """
    existing = _refuse_blocked_or_live(user_id, project_id)
    if existing is not None:  # it is answered only to a caller who may still use the project
        project_check_use(claims=claims, project_id=project_id)
    # Without one the project is checked (or registered to the caller) once, in the transaction that writes.
    route = preview_route_for(user_id=user_id, project_id=project_id)
    if existing is not None and existing.is_legacy != route.is_legacy:
        session_end(
            session=existing, reason=EndReason.OPERATOR, now=now, detail=_switch_detail(route), source="operator"
        )
        existing = None
    if existing is not None:
        return existing, False
    if route.is_legacy:
        return _legacy_session(claims=claims, user_id=user_id, project_id=project_id, route=route, now=now)
    try:
        with announced_together(), transaction.atomic():
            lock_user(user_id)
            existing = _refuse_blocked_or_live(user_id, project_id)  # again under the lock: a block meanwhile wins
            if existing is not None:  # another create of the caller's won the lock first
                project_check_use(claims=claims, project_id=project_id)
                return existing, False
            project_claim(claims=claims, project_id=project_id, now=now)
            session = _insert_session(user_id=user_id, project_id=project_id, memory_mb=memory_mb, now=now)
    except IntegrityError as error:
        return _the_race_winner(user_id, project_id, error), False
    logger.info("session created", extra={"session_id": str(session.id), "project_id": project_id})
    metrics.session_created(kind="preview")
    return session, True


def _the_race_winner(user_id: uuid.UUID, project_id: str, error: IntegrityError) -> PreviewSession:
    """Another request for the same project inserted its live session between our check and insert: theirs
    is ours. Any other integrity error is raised again."""
    existing = session_live_for_project(user_id, project_id)
    if existing is None:
        raise error
    return existing


def _switch_detail(route: PreviewRoute) -> str:
    flag = f" (flag {route.flag})" if route.flag is not None else ""
    return f"preview switched to {route.target}{flag}"


def _legacy_session(
    *, claims: Claims, user_id: uuid.UUID, project_id: str, route: PreviewRoute, now: datetime
) -> tuple[PreviewSession, bool]:
    """An active session whose preview is the Appetize app: no quota (it costs no machine), no provisioning."""
    try:
        with transaction.atomic():
            project_claim(claims=claims, project_id=project_id, now=now)
            session = PreviewSession.objects.create(
                user_id=user_id,
                project_id=project_id,
                status=SessionStatus.ACTIVE,
                preview_url=route.legacy_url,
                framework=LEGACY_FRAMEWORK,
                created_at=now,
                updated_at=now,
                started_at=now,
                last_activity_at=now,
                last_activity_source="create",
                expires_at=now + timedelta(seconds=settings.PREVIEW_SESSION_TTL),
            )
            session_status_announce(session, "INSERT")
    except IntegrityError as error:
        return _the_race_winner(user_id, project_id, error), False
    logger.info("legacy session created", extra={"session_id": str(session.id), "project_id": project_id})
    metrics.session_created(kind="legacy")
    return session, True


def _insert_session(*, user_id: uuid.UUID, project_id: str, memory_mb: int, now: datetime) -> PreviewSession:
    decision = quota_evaluate(user_id, now=now, memory_mb=memory_mb, blocked=False)  # just read, under the lock
    if not decision.can_create:
        raise QuotaExceeded(decision)
    ttl = session_ttl_seconds(decision.quota, settings.PREVIEW_SESSION_TTL)
    session_id = uuid.uuid4()
    # Before the row and its announcement: the row is written with the machine, and the agent's wake-up goes first.
    machine = session_warm_machine_for_new(session_id=session_id, memory_mb=memory_mb, now=now)
    session = PreviewSession.objects.create(
        id=session_id,
        user_id=user_id,
        project_id=project_id,
        memory_mb=memory_mb,
        status=SessionStatus.CREATING,
        machine=machine,
        machine_created_at=None if machine is None else now,
        machine_started_at=None if machine is None else now,
        created_at=now,
        updated_at=now,
        queued_at=now,
        last_activity_at=now,
        last_activity_source="create",
        expires_at=now + timedelta(seconds=ttl),
    )
    if machine is None:
        transaction.on_commit(lambda: _enqueue_provisioning(session.id))
    machine_pool_enqueue_refill()  # hit or miss (a miss: demand rose, the auto-sized target counts it); after ours
    session_status_announce(session, "INSERT")
    return session

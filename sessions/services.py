"""Writes with side effects on preview sessions: create, activate, touch, end, sweep."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from realtime_bridge import changes, relay
from sessions.access import project_check_use, project_claim
from sessions.models import (
    LEGACY_FRAMEWORK,
    LIVE_STATUSES,
    EndReason,
    FlagScope,
    PreviewFlag,
    PreviewSession,
    Quota,
    SessionStatus,
)
from sessions.selectors import (
    PreviewRoute,
    QuotaDecision,
    preview_route_for,
    quota_evaluate,
    session_live_for_project,
    session_ttl_seconds,
)
from velocity import metrics
from velocity.audit import audit
from velocity.auth import Claims

logger = logging.getLogger(__name__)

ACTIVITY_WRITE_INTERVAL = timedelta(seconds=5)
# A bulk sweep announces at most this many sessions one by one; the rest are visible on the next read.
STATUS_FANOUT_LIMIT = 500
PROVISION_TASK = "sessions.tasks.provision_session"


class QuotaExceeded(Exception):
    def __init__(self, decision: QuotaDecision) -> None:
        super().__init__(decision.reasons[0]["message"])
        self.decision = decision


def _lock_user(user_id: uuid.UUID) -> None:
    """Serialize one user's creates (PostgreSQL advisory lock; SQLite's IMMEDIATE transactions already are)."""
    if connection.vendor == "postgresql":
        key = int.from_bytes(hashlib.sha256(user_id.bytes).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _publish_status(session: PreviewSession, *, row_published: bool = False) -> None:
    """Tell everyone: the row change (``postgres_changes`` and the operator views, unless a save signal
    already did) and ``session:status`` on the project's channel, for the editor."""
    if not row_published:
        changes.session_rows_changed([session.id])
    relay.broadcast_on_commit(
        topic=f"project:{session.project_id}",
        event="session:status",
        payload={"session_id": str(session.id), "status": session.status, "preview_url": session.preview_url or None},
    )


def _enqueue_provisioning(session_id: uuid.UUID) -> None:
    from django_q.tasks import async_task

    async_task(PROVISION_TASK, str(session_id), task_name=f"provision-{session_id}", group="provisioning")


def session_create(
    *, claims: Claims, user_id: uuid.UUID, project_id: str, memory_mb: int, now: datetime
) -> tuple[PreviewSession, bool]:
    """The user's live session for the project, or a new one (``True``) queued for provisioning.

    Raises ``ProjectForbidden`` unless ``claims`` may use the project (an id nobody holds is claimed for
    the caller in the same transaction as the session), ``QuotaExceeded`` with every reason when the quota
    refuses; nothing is written then.
    When the rollback flags route the caller to the legacy previews, the session is an active one pointing
    at the Appetize app, and no machine is made. A live session of the other kind is ended first.
    """
    project_check_use(claims=claims, project_id=project_id)
    route = preview_route_for(user_id=user_id, project_id=project_id)
    existing = session_live_for_project(user_id, project_id)
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
        with transaction.atomic():
            _lock_user(user_id)
            existing = session_live_for_project(user_id, project_id)
            if existing is not None:
                return existing, False
            project_claim(claims=claims, project_id=project_id, now=now)
            session = _insert_session(user_id=user_id, project_id=project_id, memory_mb=memory_mb, now=now)
    except IntegrityError:
        # Another request for the same project won between our check and insert: theirs is ours.
        existing = session_live_for_project(user_id, project_id)
        if existing is None:
            raise
        return existing, False
    logger.info("session created", extra={"session_id": str(session.id), "project_id": project_id})
    metrics.session_created(kind="preview")
    return session, True


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
            _publish_status(session, row_published=True)
    except IntegrityError:
        existing = session_live_for_project(user_id, project_id)
        if existing is None:
            raise
        return existing, False
    logger.info("legacy session created", extra={"session_id": str(session.id), "project_id": project_id})
    metrics.session_created(kind="legacy")
    return session, True


def _insert_session(*, user_id: uuid.UUID, project_id: str, memory_mb: int, now: datetime) -> PreviewSession:
    decision = quota_evaluate(user_id, now=now, memory_mb=memory_mb)
    if not decision.can_create:
        raise QuotaExceeded(decision)
    ttl = session_ttl_seconds(decision.quota, settings.PREVIEW_SESSION_TTL)
    session = PreviewSession.objects.create(
        user_id=user_id,
        project_id=project_id,
        memory_mb=memory_mb,
        status=SessionStatus.CREATING,
        created_at=now,
        updated_at=now,
        queued_at=now,
        last_activity_at=now,
        last_activity_source="create",
        expires_at=now + timedelta(seconds=ttl),
    )
    _publish_status(session, row_published=True)
    transaction.on_commit(lambda: _enqueue_provisioning(session.id))
    return session


def session_activate(*, session: PreviewSession, preview_url: str, boot_timings: dict[str, Any], now: datetime) -> bool:
    """``creating`` → ``active`` once the agent is ready; False when the session was ended meanwhile."""
    updated = PreviewSession.objects.filter(id=session.id, status=SessionStatus.CREATING).update(
        status=SessionStatus.ACTIVE,
        preview_url=preview_url,
        started_at=now,
        agent_ready_at=now,
        boot_timings=boot_timings,
        updated_at=now,
        last_activity_at=now,
        last_activity_source="agent",
    )
    if updated:
        session.refresh_from_db()
        _publish_status(session)
        metrics.session_activated(created_at=session.created_at, now=now)
    return bool(updated)


def session_mark_step(*, session_id: uuid.UUID, step: str, now: datetime) -> None:
    """Record one waterfall step (``machine_created_at``, ``machine_started_at``) the first time it happens."""
    PreviewSession.objects.filter(id=session_id, **{f"{step}__isnull": True}).update(**{step: now, "updated_at": now})


def session_touch(*, session_id: uuid.UUID, source: str, now: datetime) -> bool:
    """Record activity, at most once per ``ACTIVITY_WRITE_INTERVAL`` per session (a cheap conditional update)."""
    stale = Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=now - ACTIVITY_WRITE_INTERVAL)
    return bool(
        PreviewSession.objects.filter(stale, id=session_id, status__in=LIVE_STATUSES).update(
            last_activity_at=now, last_activity_source=source, updated_at=now
        )
    )


def session_end(
    *,
    session: PreviewSession,
    reason: str,
    now: datetime,
    detail: str = "",
    source: str = "api",
    release_later: bool = False,
) -> bool:
    """End a live session (``failed`` when the reason is a failure) and destroy its machine.

    ``release_later`` destroys the machine in the task cluster instead of now: for callers that are the
    machine itself (its agent's exit report), which must not wait on their own destruction.
    Ending a finished session changes nothing and returns False.
    """
    status = SessionStatus.FAILED if reason == EndReason.FAILED else SessionStatus.ENDED
    with transaction.atomic():
        updated = PreviewSession.objects.filter(id=session.id, status__in=LIVE_STATUSES).update(
            status=status, end_reason=reason, end_detail=detail[:500], ended_at=now, updated_at=now
        )
        session.refresh_from_db()
        if updated:
            _publish_status(session)
    if updated:
        logger.info("session ended", extra={"session_id": str(session.id), "reason": reason})
        metrics.sessions_ended(reason=reason)
        if release_later:
            _release_machine_later(session, source=source, reason=reason)
        else:
            _release_machine(session, source=source, reason=reason)
    return bool(updated)


def session_end_for_machines(
    *, machine_ids: list[uuid.UUID], reason: str, now: datetime, source: str, detail: str = ""
) -> int:
    """End every live session running on these machines (an operator's kill, a machine gone or failed)."""
    live = PreviewSession.objects.filter(machine_id__in=machine_ids, status__in=LIVE_STATUSES)
    return sum(
        session_end(session=session, reason=reason, now=now, detail=detail, source=source) for session in list(live)
    )


def _release_machine(session: PreviewSession, *, source: str, reason: str) -> None:
    from machines.services import machine_destroy

    if session.machine_id is not None:
        machine_destroy(machine_id=session.machine_id, source=source, detail={"session_end_reason": reason})


def _release_machine_later(session: PreviewSession, *, source: str, reason: str) -> None:
    from django_q.tasks import async_task

    if session.machine_id is not None:
        async_task(
            "machines.services.machine_destroy",
            machine_id=session.machine_id,
            source=source,
            detail={"session_end_reason": reason},
            task_name=f"release-{session.machine_id}",
        )


def session_end_expired(*, now: datetime) -> int:
    """End every live session past ``expires_at`` in one conditional update, then release their machines.

    The ``status__in`` condition is the claim: a second sweeper running at the same moment updates
    nothing that the first already ended, so no session is ended twice.
    """
    # One relay request for all the announcements (the cluster's case in the embedded mode), not one each.
    with relay.batched(), transaction.atomic():
        count = PreviewSession.objects.filter(status__in=LIVE_STATUSES, expires_at__lt=now).update(
            status=SessionStatus.ENDED, end_reason=EndReason.EXPIRED, ended_at=now, updated_at=now
        )
        if count:
            ended = list(
                PreviewSession.objects.filter(end_reason=EndReason.EXPIRED, ended_at=now)[:STATUS_FANOUT_LIMIT]
            )
            changes.session_rows_changed([session.id for session in ended])
            for session in ended:
                _publish_status(session, row_published=True)
    if count:
        logger.info("expired sessions ended", extra={"count": count})
        metrics.sessions_ended(reason=EndReason.EXPIRED, count=count)
        session_release_finished_machines(source="schedule")
    return count


def session_release_finished_machines(*, source: str) -> int:
    """Destroy machines still running for sessions that have finished (idempotent catch-up)."""
    from machines.models import GONE_STATES
    from machines.services import machine_destroy

    machine_ids = (
        PreviewSession.objects.exclude(status__in=LIVE_STATUSES)
        .filter(machine__isnull=False)
        .exclude(machine__state__in=GONE_STATES)
        .values_list("machine_id", flat=True)
        .distinct()
    )
    released = 0
    for machine_id in list(machine_ids):
        released += machine_destroy(machine_id=machine_id, source=source, detail={"reason": "session finished"})
    return released


def session_reap_idle(*, now: datetime, idle_timeout: int) -> int:
    """End live sessions idle longer than ``idle_timeout`` seconds.

    Each candidate is locked and its last activity re-read under that lock before the decision, so an
    edit recorded a moment earlier keeps the session alive.
    """
    cutoff = now - timedelta(seconds=idle_timeout)
    candidates = PreviewSession.objects.filter(status__in=LIVE_STATUSES, last_activity_at__lt=cutoff)
    reaped = 0
    for session_id in list(candidates.values_list("id", flat=True)[:1000]):
        if _reap_one(session_id, cutoff=cutoff, now=now):
            reaped += 1
    if reaped:
        session_release_finished_machines(source="schedule")
    return reaped


def _reap_one(session_id: uuid.UUID, *, cutoff: datetime, now: datetime) -> bool:
    with transaction.atomic():
        session = (
            PreviewSession.objects.select_for_update(skip_locked=True)
            .filter(id=session_id, status__in=LIVE_STATUSES)
            .first()
        )
        if session is None or (session.last_activity_at and session.last_activity_at >= cutoff):
            return False
        session.status, session.end_reason = SessionStatus.ENDED, EndReason.IDLE
        session.ended_at = session.updated_at = now
        session.save(update_fields=["status", "end_reason", "ended_at", "updated_at"])
        _publish_status(session, row_published=True)
    logger.info("idle session ended", extra={"session_id": str(session_id)})
    metrics.sessions_ended(reason=EndReason.IDLE)
    return True


def session_fail_stuck(*, now: datetime, timeout: int) -> int:
    """Fail sessions that stayed ``creating`` longer than ``timeout`` seconds (a lost provisioning)."""
    stuck = PreviewSession.objects.filter(
        status=SessionStatus.CREATING, created_at__lt=now - timedelta(seconds=timeout)
    )
    failed = 0
    for session in list(stuck[:1000]):
        failed += session_end(
            session=session, reason=EndReason.FAILED, now=now, detail="provisioning timed out", source="schedule"
        )
    return failed


def quota_set(*, user_id: uuid.UUID, values: dict[str, Any], actor_label: str) -> tuple[Quota, bool]:
    """Create or update one user's quota override (the API's write, by the service role named ``actor_label``),
    audited like an operator's edit."""
    with transaction.atomic():
        quota, created = Quota.objects.select_for_update().get_or_create(user_id=user_id, defaults=values)
        before = {} if created else quota.audit_values()
        if not created:
            for name, value in values.items():
                setattr(quota, name, value)
            quota.updated_at = timezone.now()
            quota.save(update_fields=[*values.keys(), "updated_at"])
        action = "quota.create" if created else "quota.update"
        audit(
            actor=None, actor_label=actor_label, action=action, target=quota, before=before, after=quota.audit_values()
        )
    return quota, created


def session_provision(*, session_id: uuid.UUID | str, now: datetime) -> str:
    """Give a queued session a running machine; the agent's ``ready`` event then activates it.

    A started machine from the warm pool is claimed first (its agent learns the project from its
    assignment poll); otherwise one is created. Any launch failure ends the session as ``failed`` with the
    reason, and its machine is destroyed.
    """
    session = PreviewSession.objects.filter(id=session_id, status=SessionStatus.CREATING, machine__isnull=True).first()
    if session is None:
        return f"session {session_id}: nothing to provision"
    return _claim_warm_machine(session, now=now) or _provision_new_machine(session, now=now)


def _claim_warm_machine(session: PreviewSession, *, now: datetime) -> str | None:
    """A summary once a warm machine is this session's; None when the pool has none to give."""
    from machines.services import machine_claim_warm, machine_pool_enqueue_refill

    with transaction.atomic():
        machine = machine_claim_warm(memory_mb=session.memory_mb, session_id=str(session.id), now=now)
        if machine is None:
            return None
        claimed = PreviewSession.objects.filter(
            id=session.id, status=SessionStatus.CREATING, machine__isnull=True
        ).update(machine=machine, machine_created_at=now, machine_started_at=now, updated_at=now)
        if not claimed:
            transaction.set_rollback(True)  # the machine goes back to the pool untouched
            return f"session {session.id}: ended or claimed before provisioning"
        machine_pool_enqueue_refill()
    logger.info("session got a warm machine", extra={"session_id": str(session.id), "machine_id": str(machine.id)})
    return f"session {session.id}: warm machine {machine.id} claimed"


def _provision_new_machine(session: PreviewSession, *, now: datetime) -> str:
    from machines.providers.base import ProviderError
    from machines.services import machine_launch, machine_prepare

    session_id = session.id
    machine, spec = machine_prepare(session=session, memory_mb=session.memory_mb)
    claimed = PreviewSession.objects.filter(id=session.id, status=SessionStatus.CREATING, machine__isnull=True).update(
        machine=machine, machine_created_at=machine.created_at, updated_at=now
    )
    if not claimed:
        _discard_machine(machine.id)
        return f"session {session_id}: ended or claimed before provisioning"
    session.machine = machine
    try:
        machine_launch(machine=machine, spec=spec)
    except ProviderError as exc:
        session_end(
            session=session, reason=EndReason.FAILED, now=timezone.now(), detail=f"machine launch failed: {exc}"
        )
        return f"session {session_id}: failed ({exc})"
    session_mark_step(session_id=session.id, step="machine_started_at", now=timezone.now())
    session.refresh_from_db(fields=["status"])
    if not session.is_live:
        _release_machine(session, source="api", reason="ended during provisioning")
    return f"session {session_id}: machine {machine.id} started"


def _discard_machine(machine_id: uuid.UUID) -> None:
    from machines.services import machine_destroy

    machine_destroy(machine_id=machine_id, source="api", detail={"reason": "not needed"})


def session_handle_agent_event(*, machine: Any, event: dict[str, Any], now: datetime) -> str:
    """Apply one report from a machine's agent to its session; returns what happened, for the reply."""
    session = PreviewSession.objects.filter(machine=machine).order_by("-created_at").first()
    if session is None:
        return "no session"
    kind = event["type"]
    if kind == "ready":
        from machines.services import machine_preview_url

        if event.get("framework"):
            PreviewSession.objects.filter(id=session.id).update(framework=str(event["framework"])[:32])
        activated = session_activate(
            session=session,
            preview_url=machine_preview_url(machine, session),
            boot_timings=event.get("boot_steps") or {},
            now=now,
        )
        return "activated" if activated else "ignored"
    if kind == "activity":
        return (
            "recorded"
            if session_touch(session_id=session.id, source=str(event.get("source") or "agent"), now=now)
            else "throttled"
        )
    if kind == "exit":
        reason = EndReason.IDLE if event.get("reason") == "idle" else EndReason.FAILED
        detail = f"agent exited: {event.get('reason')}"
        ended = session_end(session=session, reason=reason, now=now, detail=detail, source="agent", release_later=True)
        return "ended" if ended else "ignored"
    return "noted"


def preview_flag_set(
    *, scope: str, target: str, user_id: uuid.UUID | None = None, project_id: str = "", legacy_url: str = ""
) -> PreviewFlag:
    """Create or change the flag for one subject (everyone, a user or a project)."""
    flag, _ = PreviewFlag.objects.update_or_create(
        scope=scope,
        user_id=user_id if scope == FlagScope.USER else None,
        project_id=project_id if scope == FlagScope.PROJECT else "",
        defaults={"target": target, "legacy_url": legacy_url, "updated_at": timezone.now()},
    )
    logger.info("preview flag set", extra={"scope": scope, "target": target, "project_id": project_id})
    return flag


def preview_flags_route(*, flag_ids: list[uuid.UUID], target: str, actor: Any, now: datetime) -> int:
    """Point the given flags at ``target`` for an operator, one audit record per flag changed; returns how many."""
    with transaction.atomic():
        flags = list(PreviewFlag.objects.select_for_update().filter(id__in=flag_ids).exclude(target=target))
        for flag in flags:
            before = flag.audit_values()
            flag.target, flag.updated_at = target, now
            flag.save(update_fields=["target", "updated_at"])
            audit(actor=actor, action="flag.route", target=flag, before=before, after=flag.audit_values())
    logger.info("preview flags routed", extra={"target": target, "count": len(flags)})
    return len(flags)

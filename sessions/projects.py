"""Writes on the project registry: claiming a project id, owners and members, each announced and audited.

Losing access ends access: when a member is removed or an owner replaced, their live sessions of the project
end and every realtime channel on ``project:{id}`` is re-authorized after commit, so their sockets get
Realtime's ``system`` error and ``phx_close``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from realtime_bridge import events, publish
from sessions.models import LIVE_STATUSES, EndReason, PreviewSession, Project, ProjectMember
from sessions.services import session_end
from velocity.audit import audit

logger = logging.getLogger(__name__)


def _snapshot(project: Project) -> dict[str, Any]:
    members = {str(m.user_id): m.role for m in project.members.all()}
    return {"owner_id": str(project.owner_id), "members": members}


def _access_changed(project_id: str) -> None:
    publish.reauthorize_on_commit(topic=events.project_topic(project_id))


def project_set_owner(*, project_id: str, owner_id: uuid.UUID, actor: str, now: datetime) -> tuple[Project, bool]:
    """Create the project for ``owner_id`` or hand it over; the previous owner loses access."""
    with transaction.atomic():
        project, created = Project.objects.select_for_update().get_or_create(
            project_id=project_id, defaults={"owner_id": owner_id, "created_at": now, "updated_at": now}
        )
        before = {} if created else _snapshot(project)
        previous = project.owner_id
        if not created and previous != owner_id:
            project.owner_id, project.updated_at = owner_id, now
            project.save(update_fields=["owner_id", "updated_at"])
            ProjectMember.objects.filter(project=project, user_id=owner_id).delete()
            _end_sessions_of(user_id=previous, project=project, now=now)
            _access_changed(project_id)
        audit(
            actor=None,
            actor_label=actor,
            action="project.owner",
            target=project,
            before=before,
            after=_snapshot(project),
        )
    return project, created


def project_member_set(*, project: Project, user_id: uuid.UUID, role: str, actor: str, now: datetime) -> ProjectMember:
    """Add a member or change their role (a viewer made editor, or the reverse)."""
    if user_id == project.owner_id:
        raise ValueError("the owner is not a member")
    with transaction.atomic():
        before = _snapshot(project)
        member, _ = ProjectMember.objects.update_or_create(project=project, user_id=user_id, defaults={"role": role})
        project.updated_at = now
        project.save(update_fields=["updated_at"])
        _changed(project, action="project.member", actor=actor, before=before)
    return member


def project_member_remove(*, project: Project, user_id: uuid.UUID, actor: str, now: datetime) -> bool:
    """Remove a member: their live sessions of the project end and their sockets on it are closed."""
    with transaction.atomic():
        before = _snapshot(project)
        deleted, _ = ProjectMember.objects.filter(project=project, user_id=user_id).delete()
        if not deleted:
            return False
        _end_sessions_of(user_id=user_id, project=project, now=now)
        _changed(project, action="project.member_removed", actor=actor, before=before)
    return True


def _changed(project: Project, *, action: str, actor: str, before: dict[str, Any]) -> None:
    """Inside the write's transaction: sockets on the project are re-checked after commit, and one audit record."""
    _access_changed(project.project_id)
    audit(actor=None, actor_label=actor, action=action, target=project, before=before, after=_snapshot(project))


def _end_sessions_of(*, user_id: uuid.UUID, project: Project, now: datetime) -> None:
    live = PreviewSession.objects.filter(user_id=user_id, project_id=project.project_id, status__in=LIVE_STATUSES)
    for session in list(live):
        session_end(session=session, reason=EndReason.OPERATOR, now=now, detail="project access removed")

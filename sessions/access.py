"""Who may use a project: the one access rule, asked at every door.

The REST API (session create, projects), the realtime endpoint (join, write, REST broadcast, refresh,
re-checks when access changes) call ``project_access``; the dashboard's playground reaches it through
those doors with the operator's own token and a project id nobody else can guess. It answers from one of
two backends, chosen by ``PROJECT_ACCESS_BACKEND``:

- ``registry`` (default): our own ``Project``/``ProjectMember`` rows. The owner and editors may do
  everything, viewers may read; nobody else learns anything.
- ``supabase``: the frontend's own ``projects`` table, asked as the caller under its RLS policies
  (``sessions.project_access_supabase``); a row means full access.

The service role may use every project; a preview agent's key only its own project, and only while its
machine runs.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from enum import IntEnum

from django.conf import settings
from django.db.models import OuterRef, Subquery

from machines.selectors import machine_is_running
from sessions.models import Project, ProjectMember, ProjectRole
from sessions.project_access_supabase import ProjectAccessUnavailable, supabase_project_has_access
from velocity.auth import Claims

logger = logging.getLogger(__name__)


__all__ = [
    "Access",
    "ProjectAccessUnavailable",
    "ProjectForbidden",
    "project_access",
    "project_channel_allowed",
    "project_check_use",
    "project_claim",
]


class Access(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2


def project_access(claims: Claims, project_id: str) -> Access:
    """How far ``claims`` may use ``project_id``. Raises ``ProjectAccessUnavailable`` when the Supabase
    backend cannot be asked (callers refuse then; nothing is granted on an error)."""
    if claims.is_service_role:
        return Access.WRITE
    if claims.is_agent:
        return _agent_access(claims, project_id)
    if claims.role != "authenticated" or claims.sub is None:
        return Access.NONE
    if settings.PROJECT_ACCESS_BACKEND == "supabase":
        return Access.WRITE if supabase_project_has_access(claims=claims, project_id=project_id) else Access.NONE
    return registry_access(claims.sub, project_id)


def _agent_access(claims: Claims, project_id: str) -> Access:
    """A preview agent's key: its own project, while its machine is neither gone nor being destroyed."""
    machine = claims.agent_machine
    if claims.agent_project != project_id or machine is None:
        return Access.NONE
    return Access.WRITE if machine_is_running(machine) else Access.NONE


def registry_access(user_id: uuid.UUID, project_id: str) -> Access:
    """The registry's answer in one query: owner or editor write, viewer reads, anyone else nothing."""
    role = ProjectMember.objects.filter(project=OuterRef("pk"), user_id=user_id).values("role")[:1]
    row = Project.objects.filter(project_id=project_id).annotate(role=Subquery(role)).values("owner_id", "role")
    found = row.first()
    if found is None:
        return Access.NONE
    if found["owner_id"] == user_id or found["role"] == ProjectRole.EDITOR:
        return Access.WRITE
    return Access.READ if found["role"] == ProjectRole.VIEWER else Access.NONE


def project_channel_allowed(claims: Claims, project_id: str, action: str) -> bool:
    """The realtime endpoint's policy for ``project:{id}``: ``read`` to join, ``write`` to broadcast."""
    try:
        access = project_access(claims, project_id)
    except ProjectAccessUnavailable:
        logger.warning("project access unavailable: channel refused", extra={"project_id": project_id})
        return False
    return access >= (Access.WRITE if action == "write" else Access.READ)


def user_channel_allowed(claims: Claims, user_id: str, action: str) -> bool:
    """The realtime endpoint's policy for ``user:{sub}``: only that user may join (``read``), to follow their
    own session rows with `postgres_changes` before a session exists; nobody but the service role writes."""
    is_user = claims.role == "authenticated" and not claims.is_agent and claims.sub is not None
    return action == "read" and is_user and str(claims.sub) == user_id


class ProjectForbidden(Exception):
    """The caller may not use this project: the same answer whether it is someone else's or unknown."""


def project_check_use(*, claims: Claims, project_id: str) -> None:
    """Refuse unless the caller may run previews of the project; in the registry, an id nobody holds yet
    passes (the caller's session will claim it)."""
    if project_access(claims, project_id) >= Access.WRITE:
        return
    if _registry_claimable(claims) and not Project.objects.filter(project_id=project_id).exists():
        return
    raise ProjectForbidden(project_id)


def _registry_claimable(claims: Claims) -> bool:
    """Only a user (not an agent, not a subject-less service key) can become a project's owner."""
    return settings.PROJECT_ACCESS_BACKEND == "registry" and claims.sub is not None and not claims.is_agent


def project_claim(*, claims: Claims, project_id: str, now: datetime) -> None:
    """Inside the session's transaction: check again that the caller may use the project (one query when it is
    theirs already, the common case), or register an id nobody holds to the caller.

    The registry's one write outside the project services. Two first sessions racing for one id: the
    unique index keeps one insert and the other caller is refused; a refused create rolls the claim back.
    """
    if project_access(claims, project_id) >= Access.WRITE:
        return
    if not (_registry_claimable(claims) and _register(claims, project_id, now)):
        raise ProjectForbidden(project_id)


def _register(claims: Claims, project_id: str, now: datetime) -> bool:
    """Insert the project for the caller unless its id is taken (``ON CONFLICT DO NOTHING``: no error, so no
    savepoint); True when the caller may use it then."""
    assert claims.sub is not None  # noqa: S101  (_registry_claimable guarantees it)
    project = Project(project_id=project_id, owner_id=claims.sub, created_at=now, updated_at=now)
    Project.objects.bulk_create([project], ignore_conflicts=True)
    if project_access(claims, project_id) < Access.WRITE:
        return False
    logger.info("project registered", extra={"project_id": project_id, "owner_id": str(claims.sub)})
    return True

"""The rollback switch's writes: which preview system serves everyone, a user or a project."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from django.utils import timezone

from sessions.models import FlagScope, PreviewFlag

logger = logging.getLogger(__name__)


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


def preview_flags_route(*, flag_ids: list[uuid.UUID], target: str, now: datetime) -> int:
    """Point the given flags at ``target``; returns how many changed."""
    changed = PreviewFlag.objects.filter(id__in=flag_ids).exclude(target=target).update(target=target, updated_at=now)
    logger.info("preview flags routed", extra={"target": target, "count": changed})
    return changed

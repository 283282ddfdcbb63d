"""The rollback switch's writes: which preview system serves everyone, a user or a project."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions.models import FlagScope, PreviewFlag
from velocity.audit import audit

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

"""Writes on quotas (the service role's API and the dashboard's user page both go through here)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions.models import Quota
from velocity.audit import audit


def quota_set(
    *, user_id: uuid.UUID, values: dict[str, Any], actor_label: str = "", actor: Any | None = None
) -> tuple[Quota, bool]:
    """Create or update one user's quota override, audited once: by an operator (``actor``) or by the
    service role named ``actor_label``."""
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
            actor=actor, actor_label=actor_label, action=action, target=quota, before=before, after=quota.audit_values()
        )
    return quota, created


def quota_reset(*, user_id: uuid.UUID, actor: Any | None, actor_label: str = "") -> bool:
    """Delete the user's override, so the default quota applies again (audited); False when there was none."""
    with transaction.atomic():
        quota = Quota.objects.select_for_update().filter(user_id=user_id).first()
        if quota is None:
            return False
        audit(actor=actor, actor_label=actor_label, action="quota.delete", target=quota, before=quota.audit_values())
        quota.delete()
    return True

"""Writes on quotas (the service role's API; the dashboard goes through here too)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions.models import Quota
from velocity.audit import audit


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

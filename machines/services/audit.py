"""The audit trail of what people did by hand (operator kills and ends, quota changes)."""

from __future__ import annotations

from typing import Any

from django.db import models

from machines.models import AuditRecord


def audit_record(
    *,
    actor: Any | None,
    action: str,
    target: models.Model | tuple[str, str],
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_label: str = "",
) -> AuditRecord:
    """Record that ``actor`` (a user, or None for the system) did ``action`` to ``target``.

    ``target`` is a model instance (its label and primary key are kept) or a ``(type, id)`` pair.
    """
    if isinstance(target, models.Model):
        target_type, target_id = target._meta.label_lower, str(target.pk)
    else:
        target_type, target_id = target[0], str(target[1])
    return AuditRecord.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label[:100],
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before or {},
        after=after or {},
    )

"""Reads of the audit trail (``dashboard.AuditRecord``) for the dashboard."""

from __future__ import annotations

from typing import Any

from dashboard.models import AuditRecord

RECENT = 100


def recent(limit: int = RECENT) -> list[AuditRecord]:
    return list(AuditRecord.objects.select_related("actor").order_by("-at", "-id")[:limit])


def records_for(*targets: Any) -> list[AuditRecord]:
    """The records about these objects (matched on their primary keys as text; None is skipped)."""
    ids = [str(target.pk) for target in targets if target is not None]
    if not ids:
        return []
    return list(AuditRecord.objects.select_related("actor").filter(target_id__in=ids).order_by("-at", "-id")[:RECENT])

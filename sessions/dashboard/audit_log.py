"""Reads of the audit trail for the dashboard.

``AuditRecord`` lives in the machines app (issue 6). Until it is merged these reads answer "not
available" instead of failing, so the pages render either way.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

RECENT = 100


def _model() -> type[models.Model] | None:
    try:
        return apps.get_model("machines", "AuditRecord")
    except LookupError:
        return None


def available() -> bool:
    return _model() is not None


def recent(limit: int = RECENT) -> list[Any]:
    model = _model()
    if model is None:
        return []
    return list(model._default_manager.select_related("actor").order_by("-pk")[:limit])


def records_for(*targets: Any) -> list[Any]:
    """The records about these objects (matched on their primary keys as text; None is skipped)."""
    model = _model()
    ids = [str(target.pk) for target in targets if target is not None]
    if model is None or not ids:
        return []
    return list(model._default_manager.select_related("actor").filter(target_id__in=ids).order_by("-pk")[:RECENT])

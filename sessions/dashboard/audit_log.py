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
    return list(model._default_manager.order_by("-pk")[:limit])


def records_for(target: models.Model) -> list[Any]:
    """The records about one object (matched on its primary key as text)."""
    model = _model()
    if model is None or not any(f.name == "target_id" for f in model._meta.get_fields()):
        return []
    return list(model._default_manager.filter(target_id=str(target.pk)).order_by("-pk")[:RECENT])

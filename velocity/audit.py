"""The one door to the audit trail: every operator or service-role write (a quota, a flag, a project's owner
or members, a kill, an end) says here what it changed.

The trail is kept by the ``dashboard`` app, the top layer, which the apps that write may not import. So the
door is a signal: ``audit(...)`` sends ``audited`` synchronously, and the receiver ``dashboard`` connects at
start-up writes the record inside the caller's transaction (a write rolled back takes its record with it; a
record that cannot be written fails the write).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent with: actor (a user or None), actor_label, action, target_type, target_id, before, after.
audited = Signal()


def audit(
    *,
    actor: Any | None,
    action: str,
    target: models.Model | tuple[str, str],
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_label: str = "",
) -> None:
    """Record that ``actor`` (an operator; None for the service role or the system, then named by
    ``actor_label``) did ``action`` to ``target``: a model instance (its label and primary key are kept)
    or a ``(type, id)`` pair."""
    target_type, target_id = _target(target)
    if not audited.has_listeners():
        # Only a project without the dashboard app gets here: say so rather than lose the trail quietly.
        logger.error("audit record dropped: no receiver", extra={"action": action, "target_type": target_type})
    audited.send(
        sender=None,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label[:100],
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before or {},
        after=after or {},
    )


def _target(target: models.Model | tuple[str, str]) -> tuple[str, str]:
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk)
    return target[0], str(target[1])

"""Blocking one user's new previews (an operator stopping a cost spike or abuse), and lifting the block.

A block and a session create for the same user serialize on the same lock (``user-creates:{id}``), so a
create racing a block either finishes first (and is ended by the operator's "end all") or is refused.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from sessions.models import UserBlock
from sessions.services.create import lock_user
from velocity.audit import audit


def user_block(*, user_id: uuid.UUID, reason: str, actor: Any | None, now: datetime, actor_label: str = "") -> bool:
    """Refuse the user's new sessions from now on; False (and no record) when they were already blocked."""
    label = actor_label or str(actor or "")
    with transaction.atomic():
        lock_user(user_id)
        block, created = UserBlock.objects.get_or_create(
            user_id=user_id, defaults={"reason": reason[:500], "actor_label": label[:150], "created_at": now}
        )
        if created:
            after = block.audit_values()
            audit(actor=actor, actor_label=actor_label, action="user.block", target=("user", str(user_id)), after=after)
    return created


def user_unblock(*, user_id: uuid.UUID, reason: str, actor: Any | None, actor_label: str = "") -> bool:
    """Let the user start previews again; False (and no record) when they were not blocked."""
    with transaction.atomic():
        block = UserBlock.objects.select_for_update().filter(user_id=user_id).first()
        if block is None:
            return False
        after = {"reason": reason[:500]} if reason else {}
        target = ("user", str(user_id))
        audit(
            actor=actor,
            actor_label=actor_label,
            action="user.unblock",
            target=target,
            before=block.audit_values(),
            after=after,
        )
        block.delete()
    return True

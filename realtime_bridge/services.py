"""Writes of the realtime app: the bridge's lease."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from realtime_bridge.models import BridgeLease

BRIDGE_LEASE = "supabase-bridge"


def lease_acquire(*, name: str = BRIDGE_LEASE, holder: str, ttl: float, now: datetime) -> bool:
    """Take or renew the lease; False while another live holder has it."""
    expires_at = now + timedelta(seconds=ttl)
    claimable = Q(holder=holder) | Q(expires_at__lt=now)
    if BridgeLease.objects.filter(claimable, name=name).update(holder=holder, expires_at=expires_at):
        return True
    try:
        with transaction.atomic():
            BridgeLease.objects.create(name=name, holder=holder, expires_at=expires_at)
    except IntegrityError:
        return False
    return True


def lease_release(*, name: str = BRIDGE_LEASE, holder: str) -> None:
    BridgeLease.objects.filter(name=name, holder=holder).delete()

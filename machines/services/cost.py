"""Cost rollups: one ``CostRollup`` row per day and payer, recomputed from the machines' events."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from machines.models import CostRollup
from machines.selectors import cost_by_day_and_user, day_start
from velocity.locks import instance_lock

MONEY = Decimal("0.000001")
SECONDS = Decimal("0.001")


def cost_rollup_refresh(*, now: datetime, days: int = 2) -> int | None:
    """Recompute the last ``days`` days (today included) and replace their rows; returns rows written.

    Idempotent (a rerun writes the same rows); None when another instance is rolling up right now.
    """
    start = day_start(now) - timedelta(days=days - 1)
    with instance_lock("machines.rollup_costs") as held:
        if not held:
            return None
        totals = cost_by_day_and_user(start=start, end=now, now=now)
        with transaction.atomic():
            CostRollup.objects.filter(day__gte=start.date()).delete()
            CostRollup.objects.bulk_create(
                CostRollup(
                    day=day,
                    user_id=user_id,
                    cost=t.cost.quantize(MONEY),
                    started_seconds=t.started_seconds.quantize(SECONDS),
                    idle_seconds=t.idle_seconds.quantize(SECONDS),
                    idle_cost=t.idle_cost.quantize(MONEY),
                    updated_at=now,
                )
                for (day, user_id), t in totals.items()
            )
        return len(totals)

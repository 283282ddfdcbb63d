"""State for the dashboard tests, built through the services the real flow uses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from machines.models import EventSource, Machine, MachineEvent
from machines.services import cost_rollup_refresh
from sessions.models import PreviewSession


def seed_history(*, days: int = 30, users: int = 4, now: datetime | None = None) -> int:
    """Ended sessions on destroyed machines over the past ``days`` days, and their cost rollups, so the
    cost pages have a history.

    Past moments cannot go through the services (they stamp the present), so the rows are written
    directly, shaped like the services write them. Deterministic: the same call gives the same history.
    """
    now = now or timezone.now()
    owners = [uuid.UUID(int=index + 1) for index in range(users)]
    created = 0
    with transaction.atomic():
        for day in range(days, 0, -1):
            for index, owner in enumerate(owners[: 1 + (day * 7) % users]):
                start = now - timedelta(days=day, hours=index * 2 + 1)
                held = timedelta(minutes=20 + (day * 13 + index * 29) % 150)
                past_session(owner, f"history-{day}-{index}", start, held)
                created += 1
    cost_rollup_refresh(now=now, days=days + 1)  # what the rollup_costs schedule would have written
    return created


def past_session(owner: uuid.UUID, project: str, start: datetime, held: timedelta) -> None:
    machine = Machine.objects.create(provider="local", region="iad", memory_mb=512, created_at=start, updated_at=start)
    steps = [("", "created", start), ("created", "starting", start + timedelta(seconds=2))]
    steps += [("starting", "started", start + timedelta(seconds=4)), ("started", "destroying", start + held)]
    steps.append(("destroying", "destroyed", start + held + timedelta(seconds=1)))
    for before, after, at in steps:
        MachineEvent.objects.create(machine=machine, from_state=before, to_state=after, source=EventSource.API, at=at)
    Machine.objects.filter(id=machine.id).update(state="destroyed", started_at=start, destroyed_at=start + held)
    PreviewSession.objects.create(
        user_id=owner,
        project_id=project,
        status="ended",
        end_reason="idle",
        machine=machine,
        created_at=start,
        queued_at=start,
        machine_created_at=start,
        ended_at=start + held,
        last_activity_at=start + held / 2,
    )

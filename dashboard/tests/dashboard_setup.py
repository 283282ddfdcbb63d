"""State for the dashboard tests, built through the services the real flow uses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from machines.models import EventSource, Machine, MachineEvent
from machines.services import cost_rollup_refresh
from sessions.models import PreviewSession, SessionActivity


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


def seed_policy_activity(*, pause_every: int = 3) -> int:
    """Activity minutes for the sessions ``seed_history`` made, shaped like their rows say: an edit every four
    minutes from the start to their last activity (half-way), then quiet until the idle reaper ended them; every
    ``pause_every``-th session pauses 20 minutes in the middle of its work (a 15-minute idle timeout would have
    stopped it before edits that came after). Returns the minutes written."""
    rows = []
    history = PreviewSession.objects.filter(project_id__startswith="history-").order_by("created_at")
    for number, session in enumerate(history):
        assert session.last_activity_at is not None and session.ended_at is not None
        work = int((session.last_activity_at - session.created_at).total_seconds() // 60)
        pause = range(work // 2 - 10, work // 2 + 10) if number % pause_every == 0 else range(0)
        for minute in range(0, work, 4):
            if minute not in pause:
                at = (session.created_at + timedelta(minutes=minute)).replace(second=0, microsecond=0)
                rows.append(SessionActivity(session=session, minute=at, edits=1 + minute % 3, edit_bytes=400))
    SessionActivity.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)

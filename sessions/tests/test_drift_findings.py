"""Reconciliation's findings: stored with what was done, kept a day, written into the machine's events."""

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from machines.models import DriftAction, DriftFinding, DriftKind
from machines.providers.base import preview_metadata
from machines.services import machine_reconcile
from machines.testing.fly_fake import FakeFly, Fault
from machines.tests.factories import machine_with_history
from sessions.models import PreviewSession, SessionStatus

NO_GRACE = timedelta(0)


def old(minutes: int = 10) -> datetime:
    return timezone.now() - timedelta(minutes=minutes)


@pytest.mark.django_db
def test_an_orphan_is_kept_as_a_finding_saying_it_was_destroyed_and_its_machine_and_session_are_told(
    fly_api: FakeFly,
) -> None:
    session_id = uuid.uuid4()
    tagged = preview_metadata(session_id=str(session_id), project_id="p", user_id=str(uuid.uuid4()))
    orphan_id = fly_api.add_machine("velocity-survivor", metadata=tagged)
    history = [("created", old(10)), ("started", old(10)), ("destroyed", old(5))]
    row = machine_with_history(history, provider="fly", provider_machine_id=orphan_id)
    PreviewSession.objects.create(
        id=session_id,
        user_id=uuid.uuid4(),
        project_id="p",
        machine=row,
        status="ended",
        ended_at=old(5),
        end_reason="user",
    )
    now = timezone.now()
    machine_reconcile(now=now, grace=NO_GRACE)
    finding = DriftFinding.objects.get()
    assert (finding.kind, finding.action, finding.machine, finding.session_id) == (
        "orphan",
        "destroyed",
        row,
        session_id,
    )
    assert finding.why == "its machine had already ended here" and finding.hourly_cost > 0
    assert finding.sentence.startswith(f"Destroyed orphan {orphan_id} ($0.")
    assert finding.is_warning
    event = row.events.order_by("at", "id").last()
    assert event is not None and (event.source, event.at) == ("schedule", now)
    assert event.detail["reconcile"] == finding.sentence


@pytest.mark.django_db
def test_an_orphan_the_provider_will_not_destroy_is_left_and_says_why(fly_api: FakeFly) -> None:
    orphan_id = fly_api.add_machine(
        "velocity-stubborn", metadata=preview_metadata(session_id="", project_id="", user_id="")
    )
    fly_api.inject("destroy", Fault(status=400))
    machine_reconcile(now=timezone.now(), grace=NO_GRACE)
    finding = DriftFinding.objects.get()
    assert (finding.kind, finding.action, finding.machine, finding.session_id) == ("orphan", "left", None, None)
    assert finding.why.startswith("the destroy failed")
    assert finding.sentence.startswith(f"Left orphan {orphan_id}")


@pytest.mark.django_db
def test_a_ghost_is_buried_its_session_ended_and_its_destroyed_event_says_it_was_reconciliation(local: Path) -> None:
    ghost = machine_with_history([("created", old()), ("started", old())], provider_machine_id="vanished")
    session = PreviewSession.objects.create(
        user_id=uuid.uuid4(), project_id="p", machine=ghost, status=SessionStatus.ACTIVE
    )
    machine_reconcile(now=timezone.now())
    finding = DriftFinding.objects.get()
    assert (finding.kind, finding.action, finding.session_id) == (DriftKind.GHOST, DriftAction.BURIED, session.id)
    event = ghost.events.get(to_state="destroyed")  # one event: the state change carries the finding
    assert (
        event.detail["reconcile"]
        == finding.sentence
        == ("Buried ghost vanished: gone at the provider; marked destroyed, its session ended (orphaned)")
    )


@pytest.mark.django_db
def test_findings_are_kept_a_day_then_the_reconcile_job_drops_them(local: Path) -> None:
    machine_with_history([("created", old()), ("started", old())], provider_machine_id="vanished")
    found_at = timezone.now()
    machine_reconcile(now=found_at)
    machine_reconcile(now=found_at + timedelta(hours=23))
    assert DriftFinding.objects.count() == 1
    machine_reconcile(now=found_at + timedelta(hours=25))
    assert not DriftFinding.objects.exists()


@pytest.mark.django_db
def test_a_mismatch_takes_the_providers_state_and_its_one_event_says_reconciliation_did_it(fly_api: FakeFly) -> None:
    tagged = preview_metadata(session_id="", project_id="p", user_id="u")
    machine_id = fly_api.add_machine("velocity-stopped-there", metadata=tagged)
    fly_api.machines[machine_id]["state"] = "stopped"
    row = machine_with_history([("created", old()), ("started", old())], provider="fly", provider_machine_id=machine_id)
    machine_reconcile(now=timezone.now(), grace=NO_GRACE)
    finding = DriftFinding.objects.get()
    assert (finding.kind, finding.action, finding.why) == (
        "mismatch",
        "updated",
        "started → stopped, as the provider says",
    )
    event = row.events.get(to_state="stopped")
    assert (event.source, event.detail["reconcile"]) == (
        "provider",
        f"Updated mismatched machine {machine_id}: " + finding.why,
    )
    assert not finding.is_warning

"""Lifecycle services against the real local provider: races between a launch and a destroy."""

from pathlib import Path

import pytest

from machines import services
from machines.models import Machine, MachineState
from machines.providers import get_provider

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_a_machine_destroyed_while_it_was_being_created_is_not_left_running(local: Path) -> None:
    machine, spec = services.machine_prepare(session=None, memory_mb=256)
    assert services.machine_destroy(machine_id=machine.id, source="api") == 1  # before the provider call
    services.machine_launch(machine=machine, spec=spec)
    machine.refresh_from_db()
    assert machine.state == MachineState.DESTROYED
    assert get_provider().list() == []


def test_every_transition_is_recorded_once_with_its_source(local: Path) -> None:
    machine = services.machine_create(session=None, memory_mb=256)
    services.machine_destroy(machine_id=machine.id, source="operator")
    assert services.machine_destroy(machine_id=machine.id, source="operator") == 0
    events = list(machine.events.values_list("from_state", "to_state", "source"))
    assert events == [
        ("", "created", "api"),
        ("created", "starting", "provider"),
        ("starting", "started", "provider"),
        ("started", "destroying", "operator"),
        ("destroying", "destroyed", "operator"),
    ]
    assert Machine.objects.get(id=machine.id).destroyed_at is not None

"""The session page's agent card shows the machine's CPU and memory from the agent's last heartbeat."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions import services
from sessions.testing import live_session

pytestmark = pytest.mark.django_db


def agent_card(staff_client: Any, session_id: object) -> str:
    body = staff_client.get(reverse("dashboard:session", args=[session_id]) + "?format=json").json()
    return str(body["regions"]["session_state"])


def test_the_agent_card_shows_the_machines_cpu_and_memory(staff_client: Any) -> None:
    session = live_session()
    assert session.machine is not None
    beat = {"type": "heartbeat", "devServer": True, "cpuRatio": 0.344, "memoryRatio": 0.81}
    assert services.session_record_heartbeat(machine=session.machine, event=beat, now=timezone.now()) == "recorded"
    assert "<dt>Machine load</dt><dd>CPU 34 % · memory 81 %" in agent_card(staff_client, session.id)


def test_an_agent_that_reported_no_load_shows_no_load_line(staff_client: Any) -> None:
    session = live_session()
    assert session.machine is not None
    services.session_record_heartbeat(machine=session.machine, event={"type": "heartbeat"}, now=timezone.now())
    assert "Machine load" not in agent_card(staff_client, session.id)

"""The session page shows its agent's kept log lines, file-sync events and unanswered updates on load.

The records come the real way: an editor and an agent broadcast through the real ASGI application with the
credentials the orchestrator issues, the endpoint observes them, ``traces_flush`` writes them (the writer
thread is off in tests), then a fresh GET as a staff operator renders them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from machines.services.lifecycle import machine_realtime_key
from realtime_bridge.observers import Observed
from realtime_bridge.testing import Socket
from sessions.models import PreviewSession, Project
from sessions.services import traces_flush
from sessions.services.traces import trace_observe, traces_reset
from sessions.testing import live_session
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_buffer() -> Any:
    traces_reset()
    yield
    traces_reset()


@database_sync_to_async
def owned_live_session(project_id: str) -> tuple[PreviewSession, str, str]:
    user = uuid.uuid4()
    Project.objects.create(project_id=project_id, owner_id=user)
    session = live_session(project=project_id, user_id=user)
    assert session.machine is not None
    return session, issue_token(sub=user), machine_realtime_key(machine=session.machine, project_id=project_id)


async def joined(connect: Any, token: str, topic: str) -> Socket:
    socket = await connect(token)
    reply = await socket.join(topic, {"private": True, "broadcast": {"ack": True}})
    assert reply["payload"]["status"] == "ok", reply
    return socket


async def send(socket: Socket, topic: str, event: str, payload: dict[str, Any]) -> None:
    await socket.push(f"realtime:{topic}", "broadcast", {"type": "broadcast", "event": event, "payload": payload}, "1")
    await socket.receive_event("phx_reply")


@database_sync_to_async
def flushed_page(client: Any, session: PreviewSession, **query: str) -> Any:
    while traces_flush(now=timezone.now()):
        pass
    return client.get(reverse("dashboard:session", args=[session.id]), query)


async def test_a_reload_shows_the_agents_log_lines_and_sync_events(connect, staff_client):
    project = f"records-{uuid.uuid4()}"
    session, user_key, agent_key = await owned_live_session(project)
    topic = f"project:{project}"
    editor, agent = await joined(connect, user_key, topic), await joined(connect, agent_key, topic)
    await send(editor, topic, "file:update", {"path": "src/Hello.tsx", "content": "<b>hi</b>", "version": 7})
    await send(agent, topic, "file:synced", {"path": "src/Hello.tsx", "version": 7, "sha256": "ab", "latency_ms": 4})
    await send(agent, topic, "agent:log", {"stream": "stdout", "line": "vite: page reload src/Hello.tsx"})

    page = (await flushed_page(staff_client, session)).content.decode()
    assert "[stdout] vite: page reload src/Hello.tsx" in page
    assert page.count("src/Hello.tsx</td>") == 2  # the update and its ack, as feed rows
    assert "unacknowledged" not in page
    assert "&lt;b&gt;hi" not in page and "<b>hi" not in page  # file contents are never kept


async def test_updates_the_agent_never_answered_are_a_warning_on_the_page(connect, staff_client):
    project = f"records-{uuid.uuid4()}"
    session, user_key, _agent_key = await owned_live_session(project)
    topic = f"project:{project}"
    editor = await joined(connect, user_key, topic)
    for version in (1, 2):
        await send(editor, topic, "file:update", {"path": f"f{version}.ts", "content": "x", "version": version})

    page = (await flushed_page(staff_client, session)).content.decode()
    assert "2 file updates unacknowledged for" in page
    status = (await flushed_page(staff_client, session, format="json")).json()
    assert status["numbers"]["sync_backlog"]["count"] == 2
    assert "2 file updates unacknowledged" in status["regions"]["session_sync_backlog"]


def test_a_session_with_no_records_says_it_is_waiting(staff_client):
    session = live_session(project=f"records-{uuid.uuid4()}")
    page = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    assert "Waiting for file:update and file:synced" in page
    assert "unacknowledged" not in page


def test_the_session_page_runs_the_same_number_of_queries_for_one_record_or_hundreds(
    staff_client: Any, django_assert_num_queries: Any
) -> None:
    project = f"records-{uuid.uuid4()}"
    session = live_session(project=project)
    url = reverse("dashboard:session", args=[session.id])

    def seen(event: str, payload: dict[str, Any]) -> None:
        now = timezone.now()
        trace_observe(Observed(project_id=project, event=event, summary={}, payload=payload, source="endpoint", at=now))

    seen("agent:log", {"line": "first"})
    traces_flush(now=timezone.now())
    with CaptureQueriesContext(connection) as one:
        staff_client.get(url)
    for n in range(200):
        seen("agent:log", {"line": f"line {n}"})
        seen("file:update", {"path": f"f{n}.ts", "version": 1})
    traces_flush(now=timezone.now())
    with django_assert_num_queries(len(one.captured_queries)):
        response = staff_client.get(url)
    assert response.content.decode().count("</td></tr>") == 200  # the feed's cap

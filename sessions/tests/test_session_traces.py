"""Agent log lines and file-sync events kept per session: through the real endpoint, trimmed, bounded.

Broadcasts go through the real ASGI application (an editor with its user token, an agent with the key its
machine is started with), so the records are what the endpoint really observed; tests write the buffer
with ``traces_flush`` (``sessions.testing`` switches the writer thread off).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from machines.services.lifecycle import machine_realtime_key
from realtime_bridge.observers import Observed
from realtime_bridge.publish import mirror_broadcast
from realtime_bridge.testing import Socket
from sessions.models import PreviewSession, Project, SessionTrace, TraceKind
from sessions.selectors import session_traces, sync_backlog, sync_backlogs
from sessions.services import session_end, sessions_delete_finished, traces_flush
from sessions.services.traces import trace_observe, traces_dropped, traces_pending, traces_reset
from sessions.testing import live_session
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE = {"private": True}


@pytest.fixture(autouse=True)
def empty_buffer() -> Iterator[None]:
    traces_reset()
    yield
    traces_reset()


def flush() -> int:
    written = 0
    while count := traces_flush(now=timezone.now()):
        written += count
    return written


@database_sync_to_async
def owned_live_session(project_id: str) -> tuple[PreviewSession, str, str]:
    """A live session of a project its user owns, the user's token and its agent's realtime key."""
    user = uuid.uuid4()
    Project.objects.create(project_id=project_id, owner_id=user)
    session = live_session(project=project_id, user_id=user)
    assert session.machine is not None
    return session, issue_token(sub=user), machine_realtime_key(machine=session.machine, project_id=project_id)


async def joined(connect: Any, token: str, topic: str) -> Socket:
    socket = await connect(token)
    reply = await socket.join(topic, {**PRIVATE, "broadcast": {"ack": True}})
    assert reply["payload"]["status"] == "ok", reply
    return socket


async def send(socket: Socket, topic: str, event: str, payload: dict[str, Any]) -> None:
    await socket.push(f"realtime:{topic}", "broadcast", {"type": "broadcast", "event": event, "payload": payload}, "1")
    await socket.receive_event("phx_reply")  # acked: the endpoint has handled (and observed) it


def observed(project_id: str, event: str, payload: dict[str, Any], at: datetime) -> Observed:
    return Observed(project_id=project_id, event=event, summary={}, payload=payload, source="endpoint", at=at)


async def test_an_editor_and_agent_exchange_is_kept_for_the_session(connect):
    project = f"traces-{uuid.uuid4()}"
    session, user_key, agent_key = await owned_live_session(project)
    topic = f"project:{project}"
    editor, agent = await joined(connect, user_key, topic), await joined(connect, agent_key, topic)
    await send(editor, topic, "file:update", {"path": "src/App.tsx", "content": "x", "version": 3})
    await send(agent, topic, "file:synced", {"path": "src/App.tsx", "version": 3, "sha256": "ab", "latency_ms": 9})
    await send(agent, topic, "agent:log", {"stream": "stdout", "line": "hmr update /src/App.tsx"})
    await send(editor, topic, "cursor", {"x": 1})  # not kept: neither a log line nor a sync event
    await database_sync_to_async(flush)()

    syncs = await database_sync_to_async(session_traces)(session.id, kind=TraceKind.SYNC, limit=10)
    logs = await database_sync_to_async(session_traces)(session.id, kind=TraceKind.LOG, limit=10)
    assert [(t.event, t.data["path"], t.data["version"]) for t in syncs] == [
        ("file:update", "src/App.tsx", 3),
        ("file:synced", "src/App.tsx", 3),
    ]
    assert [(t.data["stream"], t.data["line"]) for t in logs] == [("stdout", "hmr update /src/App.tsx")]
    assert "content" not in syncs[0].data


async def test_an_update_the_agent_never_answers_is_a_backlog(connect):
    project = f"traces-{uuid.uuid4()}"
    session, user_key, _agent_key = await owned_live_session(project)
    topic = f"project:{project}"
    editor = await joined(connect, user_key, topic)
    await send(editor, topic, "file:update", {"path": "a.ts", "content": "1", "version": 1})
    await send(editor, topic, "file:update", {"path": "b.ts", "content": "2", "version": 1})
    await database_sync_to_async(flush)()

    backlog = await database_sync_to_async(sync_backlog)(session.id, now=timezone.now())
    assert backlog.count == 2
    assert backlog.oldest_at is not None
    assert backlog.oldest_at <= timezone.now()


def test_the_bridge_source_is_kept_too():
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    frame = {"event": "agent:log", "payload": {"stream": "stderr", "line": "boom"}}
    # As the Supabase bridge hands it over (realtime_bridge/bridge.py).
    async_to_sync(mirror_broadcast)(f"project:{project}", "agent:log", frame, source="bridge")
    flush()
    [trace] = session_traces(session.id, kind=TraceKind.LOG, limit=5)
    assert trace.data == {"source": "bridge", "stream": "stderr", "line": "boom"}


def test_each_session_keeps_only_its_newest_records(settings):
    settings.AGENT_LOG_KEEP, settings.SYNC_EVENTS_KEEP = 3, 2
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    start = timezone.now()
    for n in range(5):
        at = start + timedelta(seconds=n)
        trace_observe(observed(project, "agent:log", {"line": f"line {n}"}, at))
        trace_observe(observed(project, "file:update", {"path": "a.ts", "version": n}, at))
    flush()
    logs = session_traces(session.id, kind=TraceKind.LOG, limit=10)
    syncs = session_traces(session.id, kind=TraceKind.SYNC, limit=10)
    assert [t.data["line"] for t in logs] == ["line 2", "line 3", "line 4"]
    assert [t.data["version"] for t in syncs] == [3, 4]


def test_a_full_buffer_drops_new_items_and_counts_them(settings):
    settings.SESSION_TRACE_BUFFER = 2
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    for n in range(5):
        trace_observe(observed(project, "agent:log", {"line": str(n)}, timezone.now()))
    assert (traces_pending(), traces_dropped()) == (2, 3)
    flush()
    assert [t.data["line"] for t in session_traces(session.id, kind=TraceKind.LOG, limit=10)] == ["0", "1"]


def test_broadcasts_of_a_project_without_sessions_keep_nothing():
    trace_observe(observed(f"nobody-{uuid.uuid4()}", "agent:log", {"line": "x"}, timezone.now()))
    assert flush() == 1
    assert not SessionTrace.objects.exists()


def test_an_agents_last_lines_after_its_session_ended_still_reach_it():
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    session_end(session=session, reason="failed", now=timezone.now())
    trace_observe(observed(project, "agent:log", {"line": "Error: listen EADDRINUSE"}, timezone.now()))
    flush()
    assert [t.data["line"] for t in session_traces(session.id, kind=TraceKind.LOG, limit=5)] == [
        "Error: listen EADDRINUSE"
    ]


def test_deleting_a_finished_session_deletes_its_records():
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    trace_observe(observed(project, "agent:log", {"line": "x"}, timezone.now()))
    flush()
    session_end(session=session, reason="user", now=timezone.now())
    assert sessions_delete_finished(session_ids=[session.id]) == 1
    assert not SessionTrace.objects.filter(session_id=session.id).exists()


def test_long_lines_and_paths_are_cut_and_neither_contents_nor_odd_figures_are_kept():
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    trace_observe(observed(project, "agent:log", {"line": "x" * 5000}, timezone.now()))
    update = {"path": "p" * 1000, "version": 1, "content": "secret source"}
    trace_observe(observed(project, "file:update", update, timezone.now()))
    ack = {"path": "a.ts", "version": "9" * 500, "latency_ms": "x" * 5000}
    trace_observe(observed(project, "file:synced", ack, timezone.now()))
    manifest = {"reason": "join", "part": 1, "parts": 1, "files": {"a.ts": {"version": 1}}, "file_count": 1}
    trace_observe(observed(project, "agent:manifest", manifest, timezone.now()))
    flush()
    [log] = session_traces(session.id, kind=TraceKind.LOG, limit=5)
    update_row, ack_row, manifest_row = session_traces(session.id, kind=TraceKind.SYNC, limit=5)
    assert len(log.data["line"]) == 1000
    assert len(update_row.data["path"]) == 300
    assert "secret source" not in str(update_row.data)
    assert (len(ack_row.data["version"]), ack_row.data["latency_ms"]) == (40, None)
    assert "files" not in manifest_row.data


# --- the backlog selector ----------------------------------------------------------------------


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def backlog_of(*events: tuple[str, dict[str, Any]]) -> tuple[int, datetime | None]:
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    for n, (event, payload) in enumerate(events):
        trace_observe(observed(project, event, payload, T0 + timedelta(seconds=n)))
    flush()
    backlog = sync_backlog(session.id, now=T0 + timedelta(minutes=5))
    return backlog.count, backlog.oldest_at


def test_a_file_synced_acknowledges_its_update():
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 1}),
        ("file:synced", {"path": "a.ts", "version": 1}),
    ) == (0, None)


def test_one_files_synced_acknowledges_many_updates():
    synced = {"files": [{"path": "a.ts", "version": 1}, {"path": "b.ts", "version": 2}], "count": 2}
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 1}),
        ("file:update", {"path": "b.ts", "version": 2}),
        ("files:synced", synced),
    ) == (0, None)


def test_an_ack_of_a_newer_version_acknowledges_the_older_ones():
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 1}),
        ("file:update", {"path": "a.ts", "version": 2}),
        ("file:synced", {"path": "a.ts", "version": 2}),
    ) == (0, None)


def test_an_unanswered_update_stays_with_its_time():
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 1}),
        ("file:synced", {"path": "a.ts", "version": 1}),
        ("file:update", {"path": "a.ts", "version": 2}),
        ("file:update", {"path": "b.ts", "version": 1}),
        ("file:synced", {"path": "b.ts", "version": 0}),
    ) == (2, T0 + timedelta(seconds=2))


def test_an_answer_settles_the_updates_before_the_one_it_answers():
    # The agent handles broadcasts in order: a.ts v2 was ignored or missed, not still on its way.
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 2}),
        ("file:update", {"path": "b.ts", "version": 1}),
        ("file:synced", {"path": "b.ts", "version": 1}),
        ("file:update", {"path": "c.ts", "version": 1}),
    ) == (1, T0 + timedelta(seconds=3))


def test_a_stale_update_the_agent_ignores_never_waits():
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 5}),
        ("file:synced", {"path": "a.ts", "version": 5}),
        ("file:update", {"path": "a.ts", "version": 4}),
    ) == (0, None)


def test_a_rejoin_manifest_settles_what_the_agent_missed():
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": 1}),
        ("agent:manifest", {"reason": "join", "part": 1, "parts": 1, "files": {}, "file_count": 0}),
    ) == (0, None)


def test_a_refused_update_and_an_answered_snapshot_are_not_waiting():
    refusal = {"event": "file:update", "code": "invalid_version", "path": "a.ts", "version": "x"}
    assert backlog_of(
        ("file:update", {"path": "a.ts", "version": "x"}),
        ("agent:error", refusal),
        ("files:snapshot", {"files": [{"path": "c.ts", "version": 1}]}),
        ("files:synced", {"files": [{"path": "c.ts", "version": 1}]}),
        ("files:snapshot", {"files": []}),
    ) == (1, T0 + timedelta(seconds=4))


def test_the_backlog_ignores_what_was_seen_after_now():
    project = f"traces-{uuid.uuid4()}"
    session = live_session(project=project)
    trace_observe(observed(project, "file:update", {"path": "a.ts", "version": 1}, T0))
    flush()
    assert sync_backlog(session.id, now=T0 - timedelta(seconds=1)).count == 0
    assert sync_backlog(session.id, now=T0).seconds(T0 + timedelta(seconds=42)) == 42


def test_the_backlogs_of_several_sessions_are_each_sessions_own(django_assert_num_queries: Any):
    waiting, answered = f"traces-{uuid.uuid4()}", f"traces-{uuid.uuid4()}"
    first, second = live_session(project=waiting), live_session(project=answered)
    quiet = live_session(project=f"traces-{uuid.uuid4()}")
    trace_observe(observed(waiting, "file:update", {"path": "a.ts", "version": 1}, T0))
    trace_observe(observed(answered, "file:update", {"path": "a.ts", "version": 1}, T0))
    trace_observe(observed(answered, "file:synced", {"path": "a.ts", "version": 1}, T0 + timedelta(seconds=1)))
    flush()
    now = T0 + timedelta(seconds=5)
    with django_assert_num_queries(1):
        backlogs = sync_backlogs([first.id, second.id, quiet.id], now=now)
    assert {key: (value.count, value.oldest_at) for key, value in backlogs.items()} == {
        first.id: (1, T0),
        second.id: (0, None),
        quiet.id: (0, None),
    }
    assert all(backlogs[key] == sync_backlog(key, now=now) for key in backlogs)

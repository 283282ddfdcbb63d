"""A session's status change reaches both official clients as `postgres_changes`, through a real server.

The server process sees the test's committed rows and its publications only through PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import uuid

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

from realtime_bridge.testing import RealtimeServer
from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.test_live_clients import Inbox, private, subscribe
from sessions.models import PreviewSession, Project
from sessions.services import session_end, sessions_delete_finished
from velocity.auth import issue_token
from velocity.testing import require

pytestmark = pytest.mark.slow


@pytest.fixture
def needs_postgres_and_redis() -> None:
    reason = "the server process sees the test's rows and changes only through PostgreSQL and Redis"
    require(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"), reason)


@database_sync_to_async
def create_session(user_id: uuid.UUID, project_id: str) -> PreviewSession:
    Project.objects.create(project_id=project_id, owner_id=user_id)
    return PreviewSession.objects.create(user_id=user_id, project_id=project_id, status="active")


@database_sync_to_async
def end_session(session: PreviewSession) -> None:
    session_end(session=session, reason="user", now=timezone.now())


@pytest.mark.usefixtures("needs_postgres_and_redis")
@pytest.mark.django_db(transaction=True)
async def test_a_session_status_change_reaches_both_clients_as_postgres_changes(
    realtime_server: RealtimeServer,
) -> None:
    owner, project = uuid.uuid4(), f"project:{uuid.uuid4()}"
    session = await create_session(owner, project[8:])
    token = issue_token(sub=owner)
    binding = {"event": "UPDATE", "schema": "public", "table": "preview_sessions", "filter": f"user_id=eq.{owner}"}
    python = AsyncRealtimeClient(realtime_server.http_base, token=token, auto_reconnect=False)
    js = await JsClient.start(realtime_server.http_base, token)
    try:
        inbox = Inbox()
        channel = python.channel(project, private()).on_postgres_changes(
            RealtimePostgresChangesListenEvent.Update, inbox.add, table="preview_sessions", filter=binding["filter"]
        )
        assert (await subscribe(channel))[0] == RealtimeSubscribeStates.SUBSCRIBED
        assert (await js.join(project, postgres=[binding]))["status"] == "SUBSCRIBED"

        await end_session(session)
        change = await inbox.wait_for(lambda c: True)
        assert change["data"]["record"]["status"] == "ended"
        seen = await js.expect(lambda e: e["type"] == "postgres_changes")
        assert (seen["msg"]["eventType"], seen["msg"]["new"]["status"]) == ("UPDATE", "ended")
    finally:
        await python.close()
        await js.close()


# supabase/realtime: tenant migration 20260626120000_readd_postgrest_filter_ops.ex (subscription_check_filters):
# Django makes preview_sessions' text columns `character varying`, which has no LIKE or regex operator of its own,
# so Supabase refuses like/ilike/match/imatch on them; the embedded endpoint does the same.
@pytest.mark.usefixtures("needs_postgres_and_redis")
@pytest.mark.django_db(transaction=True)
async def test_pattern_filters_on_a_session_column_are_refused_as_supabase_refuses_them(
    realtime_server: RealtimeServer,
) -> None:
    owner = uuid.uuid4()
    js = await JsClient.start(realtime_server.http_base, issue_token(sub=owner))
    binding = {"event": "*", "schema": "public", "table": "preview_sessions", "filter": "status=ilike.act%"}
    try:
        assert (await js.join(f"user:{owner}", postgres=[binding]))["status"] == "SUBSCRIBED"
        system = (await js.expect(lambda e: e["type"] == "system"))["payload"]
    finally:
        await js.close()
    assert (system["extension"], system["status"]) == ("postgres_changes", "error")
    assert system["message"].endswith("operator ilike requires a text-compatible column type, got character varying")


@database_sync_to_async
def delete_session(session: PreviewSession) -> None:
    session_end(session=session, reason="user", now=timezone.now())
    sessions_delete_finished(session_ids=[session.id])


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak.ex (apply_rls: a DELETE's
# old_record is the primary key only, and a DELETE is matched on that key alone)
@pytest.mark.usefixtures("needs_postgres_and_redis")
@pytest.mark.django_db(transaction=True)
async def test_a_deleted_session_reaches_its_owner_as_its_key_only(realtime_server: RealtimeServer) -> None:
    owner, project = uuid.uuid4(), str(uuid.uuid4())
    session = await create_session(owner, project)
    js = await JsClient.start(realtime_server.http_base, issue_token(sub=owner))
    binding = {"event": "DELETE", "schema": "public", "table": "preview_sessions", "filter": f"id=eq.{session.id}"}
    try:
        assert (await js.join(f"user:{owner}", postgres=[binding]))["status"] == "SUBSCRIBED"
        await delete_session(session)
        deleted = (await js.expect(lambda e: e["type"] == "postgres_changes"))["msg"]
    finally:
        await js.close()
    assert (deleted["eventType"], deleted["old"], deleted["new"]) == ("DELETE", {"id": str(session.id)}, {})

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
from sessions.services import session_end
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

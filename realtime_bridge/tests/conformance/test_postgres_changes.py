"""`postgres_changes` as Supabase does it, through both official clients.

Rows are real `preview_sessions` rows written through the sessions services in the test database (so these
cases need the embedded endpoint, PostgreSQL and Redis: the server process hears the test's changes through
Redis). The table's columns are what Django made them: `uuid`, `varchar`, `timestamptz`, `int4`, `jsonb`.
The tenant migrations named below are supabase/realtime's lib/realtime/tenants/repo/migrations/*.ex.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.utils import timezone
from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

from realtime_bridge.testing import RealtimeServer
from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance import notes
from realtime_bridge.tests.conformance.conftest import URL_VARIABLE, Target, embedded
from realtime_bridge.tests.test_live_clients import Inbox
from sessions.changes import sessions_announce
from sessions.models import PreviewSession
from sessions.services import session_end, sessions_delete_finished
from velocity.testing import async_wait_until, require

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TABLE = {"schema": "public", "table": "preview_sessions"}
PUBLIC = {"config": {"private": False}}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def rows_target(embedded_target: Target) -> Target:
    reason = "the server process hears the test's row changes only through PostgreSQL and Redis"
    require(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"), reason)
    return embedded_target


@pytest.fixture(scope="session")
def notes_server(django_db_setup: None) -> Iterator[RealtimeServer]:
    """A server process that also follows ``public.conformance_notes`` (a table with `text` columns)."""
    if os.environ.get(URL_VARIABLE):
        pytest.skip("needs the embedded endpoint (its own server process with a table of text columns)")
    settings_module = "realtime_bridge.tests.conformance.server_settings"
    with tempfile.TemporaryDirectory(prefix="velocity-rt-") as var_dir:
        server = RealtimeServer(Path(var_dir), DJANGO_SETTINGS_MODULE=settings_module).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def notes_target(notes_server: RealtimeServer, rows_target: Target) -> Iterator[Target]:
    with connection.cursor() as cursor:
        cursor.execute(notes.CREATE)
    yield embedded(notes_server)
    with connection.cursor() as cursor:
        cursor.execute(notes.DROP)


@pytest.fixture
async def js(target: Target) -> AsyncIterator[JsClient]:
    client = await JsClient.start(target.http_base, target.service_key)
    yield client
    await client.close()


@pytest.fixture
async def py(target: Target) -> AsyncIterator[AsyncRealtimeClient]:
    client = AsyncRealtimeClient(target.http_base, token=target.service_key, auto_reconnect=False)
    yield client
    await client.close()


def topic() -> str:
    return f"conformance-{uuid.uuid4()}"


@database_sync_to_async
def insert_session(owner: uuid.UUID, session_id: uuid.UUID) -> PreviewSession:
    """A new row, announced as the create service announces it."""
    with transaction.atomic():
        session = PreviewSession.objects.create(
            id=session_id, user_id=owner, project_id=f"conformance-{session_id}", status="active"
        )
        sessions_announce([session], "INSERT")
    return session


@database_sync_to_async
def end_session(session: PreviewSession) -> None:
    session_end(session=session, reason="user", now=timezone.now())


@database_sync_to_async
def delete_session(session: PreviewSession) -> None:
    sessions_delete_finished(session_ids=[session.id])


async def join_js(js: JsClient, bindings: list[dict[str, Any]]) -> str:
    name = topic()
    joined = await js.join(name, config={"private": False}, postgres=bindings)
    assert joined["status"] == "SUBSCRIBED", joined
    return name


async def system_of(js: JsClient, name: str) -> dict[str, Any]:
    return (await js.expect(lambda e: e["type"] == "system" and e["topic"] == name))["payload"]


async def change_of(js: JsClient, name: str, kind: str) -> dict[str, Any]:
    event = await js.expect(lambda e: e["type"] == "postgres_changes" and e["topic"] == name)
    assert event["msg"]["eventType"] == kind, event
    return event["msg"]


# --- filters ---------------------------------------------------------------------------------------

# (filter, delivered) for the UPDATE that ends a session: status active -> ended, memory_mb 512,
# ended_at set, end_reason "user".
OPERATOR_CASES = [
    ("status=eq.ended", True),
    ("status=eq.active", False),
    ("status=neq.active", True),
    ("status=neq.ended", False),
    ("memory_mb=lt.1024", True),
    ("memory_mb=lt.512", False),
    ("memory_mb=lte.512", True),
    ("memory_mb=lte.511", False),
    ("memory_mb=gt.511", True),
    ("memory_mb=gt.512", False),
    ("memory_mb=gte.512", True),
    ("memory_mb=gte.513", False),
    ("status=in.(ended,failed)", True),
    ("status=in.(active,creating)", False),
    ("ended_at=not.is.null", True),
    ("ended_at=is.null", False),
    ("end_reason=isdistinct.idle", True),
    ("status=isdistinct.ended", False),
    ("status=not.in.(active,creating)", True),
    ("memory_mb=not.gte.512", False),
]


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (operators, not.) and the walrus functions
# realtime.is_visible_through_filters / check_equality_op (migration 20260626120000_readd_postgrest_filter_ops.ex)
async def test_each_filter_operator_delivers_a_matching_row_and_only_that(rows_target: Target, py) -> None:
    owner = uuid.uuid4()
    inboxes = {text: Inbox() for text, _ in OPERATOR_CASES}
    channel = py.channel(topic(), PUBLIC)
    for text, inbox in inboxes.items():
        filter_text = f"user_id=eq.{owner},{text}"
        channel.on_postgres_changes(RealtimePostgresChangesListenEvent.Update, inbox.add, filter=filter_text, **TABLE)
    states: list[Any] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED, states
    ids = {
        text: callback.id
        for (text, _), callback in zip(OPERATOR_CASES, channel.postgres_changes_callbacks, strict=True)
    }

    await end_session(await insert_session(owner, uuid.uuid4()))

    # One message carries the ids of every binding the row satisfies: the others did not match.
    change = await inboxes["status=eq.ended"].wait_for(lambda c: True)
    assert sorted(change["ids"]) == sorted(ids[text] for text, delivered in OPERATOR_CASES if delivered)
    assert change["data"]["record"]["status"] == "ended"


PATTERN_CASES = [
    ("body=like.Hello%", True),
    ("body=like.hello%", False),
    ("body=like.%o_W%", True),
    ("body=ilike.hello world", True),
    ("body=ilike.%moon%", False),
    ("body=match.lo W", True),
    ("body=match.^World", False),
    ("body=imatch.^HELLO", True),
    ("body=imatch.moon$", False),
    ("body=not.like.%Moon", True),
    ("body=not.ilike.%WORLD", False),
    ("tag=is.null", True),
    ("tag=not.is.null", False),
]


# supabase/realtime: tenant migration 20260626120000_readd_postgrest_filter_ops.ex (realtime.check_equality_op:
# LIKE, ILIKE, ~, ~* and IS, negated by not.) on a `text` column
async def test_pattern_operators_deliver_on_a_text_column(notes_target: Target) -> None:
    owner = uuid.uuid4()
    client = AsyncRealtimeClient(notes_target.http_base, token=notes_target.service_key, auto_reconnect=False)
    js = await JsClient.start(notes_target.http_base, notes_target.service_key)
    try:
        channel, inbox = client.channel(topic(), PUBLIC), Inbox()
        for text, _ in PATTERN_CASES:
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.Insert, inbox.add, filter=f"owner=eq.{owner},{text}",
                schema="public", table=notes.TABLE,
            )  # fmt: skip
        await channel.subscribe()
        ids = [callback.id for callback in channel.postgres_changes_callbacks]
        binding = {"event": "INSERT", "schema": "public", "table": notes.TABLE, "filter": f"owner=eq.{owner}"}
        name = await join_js(js, [{**binding, "filter": f"{binding['filter']},body=ilike.%WORLD"}])

        await database_sync_to_async(notes.note_insert)(owner=str(owner), body="Hello World")

        change = await inbox.wait_for(lambda c: True)
        assert sorted(change["ids"]) == sorted(i for i, (_, hit) in zip(ids, PATTERN_CASES, strict=True) if hit)
        assert (await change_of(js, name, "INSERT"))["new"]["body"] == "Hello World"
    finally:
        await client.close()
        await js.close()


# supabase/realtime: tenant migration 20260626120000_readd_postgrest_filter_ops.ex
# (realtime.subscription_check_filters refuses like/ilike/match/imatch on a type without its own operator:
# `character varying` borrows text's, so every varchar column is refused) and
# lib/realtime_web/channels/realtime_channel.ex (the error is a `system` push; the channel stays joined)
@pytest.mark.parametrize("op", ["like", "ilike", "match", "imatch"])
async def test_pattern_operators_on_a_varchar_column_are_refused_as_on_supabase(
    embedded_target: Target, js, op
) -> None:
    name = await join_js(js, [{"event": "*", **TABLE, "filter": f"status={op}.act"}])
    system = await system_of(js, name)
    assert system == {
        "channel": name,
        "extension": "postgres_changes",
        "status": "error",
        "message": (
            "Unable to subscribe to changes with given parameters. An exception happened so please check your "
            f'connect parameters: [event: *, schema: public, table: preview_sessions, filters: [{{"status", "{op}", '
            '"act", false}], select: nil]. Exception: ERROR P0001 (raise_exception) operator '
            f"{op} requires a text-compatible column type, got character varying"
        ),
    }


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_subscription_params) and
# lib/realtime_web/channels/realtime_channel.ex (push_system_message after a joined reply, no retry)
async def test_a_malformed_filter_gets_the_servers_system_error_in_both_clients(target: Target, js, py) -> None:
    binding = {"event": "*", **TABLE, "filter": "subject=foo.hey"}
    name = await join_js(js, [binding])
    expected = 'Error parsing `filter` params: ["foo", "hey"]'
    assert await system_of(js, name) == {
        "channel": name,
        "extension": "postgres_changes",
        "status": "error",
        "message": expected,
    }
    states: list[Any] = []
    channel = py.channel(topic(), PUBLIC).on_postgres_changes(
        RealtimePostgresChangesListenEvent.All, Inbox().add, filter=binding["filter"], **TABLE
    )
    await channel.subscribe(lambda state, error: states.append((state, error)))
    failed = await async_wait_until(lambda: len(states) > 1 and states[1], timeout=10)
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    assert failed[0] == RealtimeSubscribeStates.CHANNEL_ERROR
    assert json.loads(str(failed[1]))["message"] == expected  # the Python client raises the system payload


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (Subscriptions.create: no table of the
# publication matched) — the embedded endpoint's publication is its registered tables
async def test_a_table_outside_the_publication_is_refused(embedded_target: Target, js) -> None:
    name = await join_js(js, [{"event": "INSERT", "schema": "public", "table": "nope"}])
    assert (await system_of(js, name))["message"] == (
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given "
        "connect parameters: [event: INSERT, schema: public, table: nope, filters: [], select: nil]"
    )


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (pg_change_params, push_system_message)
async def test_a_valid_binding_is_subscribed_to_postgresql(embedded_target: Target, js) -> None:
    name = await join_js(js, [{"event": "*", **TABLE, "filter": 'memory_mb=gte.1,status=in.(active,"a,b")'}])
    assert await system_of(js, name) == {
        "channel": name,
        "extension": "postgres_changes",
        "status": "ok",
        "message": "Subscribed to PostgreSQL",
    }


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak.ex (realtime.apply_rls: a row
# reaches a subscription only if the table's RLS lets its claims select it, whatever its filter or select list).
# Deliberately stricter on DELETE: Supabase sends a DELETE's key to every subscriber of the table (it cannot
# check RLS on a deleted row); the endpoint still applies the row rule to the deleted row.
async def test_a_stranger_naming_anothers_row_or_columns_gets_none_of_it(rows_target: Target) -> None:
    owner, stranger, session_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    by_key = {"event": "*", **TABLE, "filter": f"id=eq.{session_id}"}
    by_owner = {"event": "*", **TABLE, "filter": f"user_id=eq.{owner}", "select": ["status"]}
    own = {"event": "INSERT", **TABLE, "filter": f"user_id=eq.{stranger}"}
    victim = await JsClient.start(rows_target.http_base, rows_target.user_key(owner))
    intruder = await JsClient.start(rows_target.http_base, rows_target.user_key(stranger))
    try:
        assert (await victim.join(f"user:{owner}", postgres=[by_key]))["status"] == "SUBSCRIBED"
        assert (await intruder.join(f"user:{stranger}", postgres=[by_key, by_owner, own]))["status"] == "SUBSCRIBED"

        session = await insert_session(owner, session_id)
        await end_session(session)
        await delete_session(session)
        await insert_session(stranger, uuid.uuid4())  # published last: the intruder's own row

        for kind in ("INSERT", "UPDATE", "DELETE"):
            await change_of(victim, f"user:{owner}", kind)
        first = await intruder.expect(lambda e: e["type"] == "postgres_changes")
    finally:
        await victim.close()
        await intruder.close()
    assert first["msg"]["new"]["user_id"] == str(stranger)  # nothing of the owner's came before it


# --- payloads --------------------------------------------------------------------------------------


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak.ex (realtime.apply_rls:
# record, old_record of the identity, DELETE's old_record cut to the primary key under RLS,
# commit_timestamp 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') and lib/realtime/adapters/changes.ex (the keys, errors nil)
async def test_insert_update_and_delete_arrive_in_supabases_shapes(rows_target: Target, js) -> None:
    owner, session_id = uuid.uuid4(), uuid.uuid4()
    name = await join_js(js, [{"event": "*", **TABLE, "filter": f"id=eq.{session_id}"}])
    assert (await system_of(js, name))["status"] == "ok"

    session = await insert_session(owner, session_id)
    await end_session(session)
    await delete_session(session)

    inserted = await change_of(js, name, "INSERT")
    updated = await change_of(js, name, "UPDATE")
    deleted = await change_of(js, name, "DELETE")
    for change in (inserted, updated, deleted):
        assert (change["schema"], change["table"], change["errors"]) == ("public", "preview_sessions", None)
        assert TIMESTAMP.match(change["commit_timestamp"]), change["commit_timestamp"]
    assert (inserted["new"]["id"], inserted["new"]["user_id"], inserted["old"]) == (str(session_id), str(owner), {})
    assert (updated["new"]["status"], updated["old"]) == ("ended", {"id": str(session_id)})
    assert (deleted["new"], deleted["old"]) == ({}, {"id": str(session_id)})


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak.ex (realtime.apply_rls:
# a DELETE is matched against the old row's identity, its primary key only without REPLICA IDENTITY FULL)
async def test_a_delete_is_matched_on_its_primary_key_only(rows_target: Target, py) -> None:
    owner, session_id = uuid.uuid4(), uuid.uuid4()
    by_key, by_owner = Inbox(), Inbox()
    channel = py.channel(topic(), PUBLIC)
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.Delete, by_key.add, filter=f"id=eq.{session_id}", **TABLE
    )
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.Delete, by_owner.add, filter=f"user_id=eq.{owner}", **TABLE
    )
    states: list[Any] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    key_id = channel.postgres_changes_callbacks[0].id

    session = await insert_session(owner, session_id)
    await end_session(session)
    await delete_session(session)

    deleted = await by_key.wait_for(lambda c: True)
    assert deleted["ids"] == [key_id]  # the user_id binding did not match
    assert deleted["data"]["old_record"] == {"id": str(session_id)}
    assert "record" not in deleted["data"]


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_select) and tenant migration
# 20260527120000_add_select_columns_to_subscriptions.ex / apply_rls (columns, record and old_record limited to
# the selection plus the primary key; one message per distinct selection)
async def test_a_select_list_limits_columns_and_records_to_it_and_the_key(rows_target: Target, js, py) -> None:
    owner, session_id = uuid.uuid4(), uuid.uuid4()
    binding = {"event": "UPDATE", **TABLE, "filter": f"id=eq.{session_id}", "select": ["status", "ended_at"]}
    name = await join_js(js, [binding])
    assert (await system_of(js, name))["status"] == "ok"
    inbox = Inbox()
    channel = py.channel(topic(), PUBLIC).on_postgres_changes(
        RealtimePostgresChangesListenEvent.Update, inbox.add, filter=binding["filter"], select=["status"], **TABLE
    )
    await channel.subscribe()

    await end_session(await insert_session(owner, session_id))

    updated = await change_of(js, name, "UPDATE")
    assert set(updated["new"]) == {"id", "status", "ended_at"}
    assert updated["old"] == {"id": str(session_id)}
    data = (await inbox.wait_for(lambda c: True))["data"]
    assert [column["name"] for column in data["columns"]] == ["id", "status"]
    assert data["record"] == {"id": str(session_id), "status": "ended"}


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_select, reject_select_on_wildcard)
async def test_select_refusals_use_the_servers_texts(target: Target, js) -> None:
    name = await join_js(js, [{"event": "*", "schema": "public", "table": "*", "select": ["id"]}])
    assert (await system_of(js, name))["message"] == (
        "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
    )

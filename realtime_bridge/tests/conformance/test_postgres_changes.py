"""`postgres_changes` as Supabase does it, through both official clients.

Cases that write rows use ``public.conformance_notes`` (``notes.py``: `int8` key, `uuid`, `text`, `varchar`,
`int4`, `bool`, `timestamptz`, `jsonb` columns) on the suite's own server process, which hears the test's
changes through Redis: they need the embedded endpoint, PostgreSQL and Redis. The product's own table,
``preview_sessions``, has its cases in sessions/tests/test_live_postgres_changes.py.
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
from django.db import connection
from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

from realtime_bridge.testing import RealtimeServer
from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance import notes
from realtime_bridge.tests.conformance.conftest import URL_VARIABLE, Target, embedded
from realtime_bridge.tests.test_live_clients import Inbox
from velocity.testing import async_wait_until, require

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NOTES = {"schema": "public", "table": notes.TABLE}
PUBLIC: Any = {"config": {"private": False}}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOTE = {"body": "Hello World", "status": "open", "size": 512, "done": True, "at": "2026-01-02T03:04:05Z"}


@pytest.fixture(scope="session")
def notes_server(django_db_setup: None) -> Iterator[RealtimeServer]:
    """The suite's server process: the project's apps plus ``notes.NotesConfig``."""
    if os.environ.get(URL_VARIABLE):
        pytest.skip("needs the embedded endpoint (its own server process with the suite's table)")
    with tempfile.TemporaryDirectory(prefix="velocity-rt-") as var_dir:
        server = RealtimeServer(Path(var_dir), VELOCITY_EXTRA_APPS=notes.APP).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def notes_target(notes_server: RealtimeServer) -> Iterator[Target]:
    reason = "the server process hears the test's row changes only through PostgreSQL and Redis"
    require(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"), reason)
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


@pytest.fixture
async def notes_js(notes_target: Target) -> AsyncIterator[JsClient]:
    client = await JsClient.start(notes_target.http_base, notes_target.service_key)
    yield client
    await client.close()


@pytest.fixture
async def notes_py(notes_target: Target) -> AsyncIterator[AsyncRealtimeClient]:
    client = AsyncRealtimeClient(notes_target.http_base, token=notes_target.service_key, auto_reconnect=False)
    yield client
    await client.close()


insert = database_sync_to_async(notes.note_insert)
update = database_sync_to_async(notes.note_update)
delete = database_sync_to_async(notes.note_delete)


def topic() -> str:
    return f"conformance-{uuid.uuid4()}"


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


async def subscribed_ids(channel: Any) -> list[int]:
    states: list[Any] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED, states
    return [int(callback.id) for callback in channel.postgres_changes_callbacks]


# --- filters ---------------------------------------------------------------------------------------

# (condition, delivered) for the INSERT of NOTE (tag NULL, meta {"k": 1}).
OPERATOR_CASES = [
    ("size=eq.512", True),
    ("size=eq.511", False),
    ("status=neq.closed", True),
    ("status=neq.open", False),
    ("size=lt.1024", True),
    ("size=lt.512", False),
    ("size=lte.512", True),
    ("size=lte.511", False),
    ("size=gt.511", True),
    ("size=gt.512", False),
    ("size=gte.512", True),
    ("size=gte.513", False),
    ("status=in.(open,held)", True),
    ("status=in.(closed)", False),
    ("body=like.Hello%", True),
    ("body=like.hello%", False),
    ("body=ilike.hello_world", True),
    ("body=ilike.%moon%", False),
    ("body=match.lo W", True),
    ("body=match.^World", False),
    ("body=imatch.^HELLO", True),
    ("body=imatch.moon$", False),
    ("done=is.true", True),
    ("done=is.false", False),
    ("tag=is.null", True),
    ("tag=not.is.null", False),
    ("status=isdistinct.closed", True),
    ("status=isdistinct.open", False),
    ("at=gt.2026-01-01T00:00:00Z", True),
    ("at=lt.2026-01-01T00:00:00Z", False),
    ('meta=eq.{"k":1}', True),
    ('meta=eq.{"k":2}', False),
    ("body=not.like.%Moon", True),
    ("status=not.in.(open)", False),
    ("tag=eq.x", False),  # NULL fails every operator but is and isdistinct
    ("tag=not.eq.x", False),
]


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (operators, not.) and the walrus functions
# realtime.is_visible_through_filters / check_equality_op (tenant migration 20260626120000_readd_postgrest_filter_ops)
async def test_each_filter_operator_delivers_a_matching_row_and_only_that(notes_py, notes_js) -> None:
    owner = str(uuid.uuid4())
    channel, inbox = notes_py.channel(topic(), PUBLIC), Inbox()
    for condition, _ in OPERATOR_CASES:
        channel.on_postgres_changes(
            RealtimePostgresChangesListenEvent.Insert, inbox.add, filter=f"owner=eq.{owner},{condition}", **NOTES
        )
    ids = await subscribed_ids(channel)
    name = await join_js(notes_js, [{"event": "INSERT", **NOTES, "filter": f"owner=eq.{owner},body=ilike.%WORLD"}])

    await insert(owner=owner, meta={"k": 1}, **NOTE)

    # One message carries the ids of every binding the row satisfies: the others did not match.
    change = await inbox.wait_for(lambda c: True)
    delivered = [i for i, (_, hit) in zip(ids, OPERATOR_CASES, strict=True) if hit]
    names = dict(zip(ids, OPERATOR_CASES, strict=True))
    assert sorted(names[i] for i in change["ids"]) == sorted(names[i] for i in delivered), change["data"]
    assert (await change_of(notes_js, name, "INSERT"))["new"]["body"] == "Hello World"


# supabase/realtime: tenant migration 20260626120000_readd_postgrest_filter_ops (realtime.subscription_check_filters
# refuses like/ilike/match/imatch on a type without an operator of its own: `character varying` borrows text's)
# and lib/realtime_web/channels/realtime_channel.ex (the error is a `system` push; the channel stays joined)
@pytest.mark.parametrize("op", ["like", "ilike", "match", "imatch"])
async def test_pattern_operators_on_a_varchar_column_are_refused(notes_js, op) -> None:
    name = await join_js(notes_js, [{"event": "*", **NOTES, "filter": f"status={op}.op"}])
    assert await system_of(notes_js, name) == {
        "channel": name,
        "extension": "postgres_changes",
        "status": "error",
        "message": (
            "Unable to subscribe to changes with given parameters. An exception happened so please check your "
            f'connect parameters: [event: *, schema: public, table: {notes.TABLE}, filters: [{{"status", "{op}", '
            '"op", false}], select: nil]. Exception: ERROR P0001 (raise_exception) operator '
            f"{op} requires a text-compatible column type, got character varying"
        ),
    }


# supabase/realtime: tenant migration 20260626120000_readd_postgrest_filter_ops (subscription_check_filters: a
# value the column's type cannot take is Postgres's cast error)
async def test_a_value_the_column_cannot_take_is_postgres_error(notes_js) -> None:
    name = await join_js(notes_js, [{"event": "*", **NOTES, "filter": "size=gt.big"}])
    assert (await system_of(notes_js, name))["message"].endswith(
        'Exception: ERROR 22P02 (invalid_text_representation) invalid input syntax for type integer: "big"'
    )


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_subscription_params) and
# lib/realtime_web/channels/realtime_channel.ex (push_system_message after a joined reply, no retry)
async def test_a_malformed_filter_gets_the_servers_system_error_in_both_clients(target: Target, js, py) -> None:
    binding = {"event": "*", "schema": "public", "table": "preview_sessions", "filter": "subject=foo.hey"}
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
        RealtimePostgresChangesListenEvent.All, Inbox().add, filter=binding["filter"], schema="public", table="x"
    )
    await channel.subscribe(lambda state, error: states.append((state, error)))
    failed = await async_wait_until(lambda: len(states) > 1 and states[1], timeout=10)
    assert states[0][0] == RealtimeSubscribeStates.SUBSCRIBED
    assert failed[0] == RealtimeSubscribeStates.CHANNEL_ERROR
    assert json.loads(str(failed[1]))["message"] == expected  # the Python client raises the system payload


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (Subscriptions.create: no table of the
# publication matched); the embedded endpoint's publication is its registered tables
async def test_a_table_outside_the_publication_is_refused(embedded_target: Target, js) -> None:
    name = await join_js(js, [{"event": "INSERT", "schema": "public", "table": "nope"}])
    assert (await system_of(js, name))["message"] == (
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given "
        "connect parameters: [event: INSERT, schema: public, table: nope, filters: [], select: nil]"
    )


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (pg_change_params, push_system_message)
async def test_a_valid_binding_is_subscribed_to_postgresql(notes_js) -> None:
    name = await join_js(notes_js, [{"event": "*", **NOTES, "filter": 'size=gte.1,status=in.(open,"a,b")'}])
    assert await system_of(notes_js, name) == {
        "channel": name,
        "extension": "postgres_changes",
        "status": "ok",
        "message": "Subscribed to PostgreSQL",
    }


# --- payloads --------------------------------------------------------------------------------------


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak (realtime.apply_rls: record,
# old_record of the identity, a DELETE's old_record cut to the primary key under RLS, commit_timestamp
# 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') and lib/realtime/adapters/changes.ex (the keys, errors nil)
async def test_insert_update_and_delete_arrive_in_supabases_shapes(notes_js) -> None:
    owner = str(uuid.uuid4())
    name = await join_js(notes_js, [{"event": "*", **NOTES, "filter": f"owner=eq.{owner}"}])
    by_key = await join_js(notes_js, [{"event": "DELETE", **NOTES, "filter": "id=gt.0"}])
    assert (await system_of(notes_js, name))["status"] == "ok"

    note = await insert(owner=owner, **NOTE)
    await update(note["id"], status="closed")
    await delete(note["id"])

    inserted = await change_of(notes_js, name, "INSERT")
    updated = await change_of(notes_js, name, "UPDATE")
    deleted = await change_of(notes_js, by_key, "DELETE")  # matched on the key: see the next case
    for change in (inserted, updated, deleted):
        assert (change["schema"], change["table"], change["errors"]) == ("public", notes.TABLE, None)
        assert TIMESTAMP.match(change["commit_timestamp"]), change["commit_timestamp"]
    assert (set(inserted["new"]), inserted["old"]) == (set(notes.NAMES), {})
    assert (inserted["new"]["size"], inserted["new"]["done"], inserted["new"]["tag"]) == (512, True, None)
    assert (updated["new"]["status"], updated["old"]) == ("closed", {"id": note["id"]})
    assert (deleted["new"], deleted["old"]) == ({}, {"id": note["id"]})


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak (realtime.apply_rls: a DELETE
# is matched against the old row's identity, its primary key only without REPLICA IDENTITY FULL)
async def test_a_delete_is_matched_on_its_primary_key_only(notes_py) -> None:
    owner = str(uuid.uuid4())
    note = await insert(owner=owner, **NOTE)
    by_key, by_owner = Inbox(), Inbox()
    channel = notes_py.channel(topic(), PUBLIC)
    delete_event = RealtimePostgresChangesListenEvent.Delete
    channel.on_postgres_changes(delete_event, by_key.add, filter=f"id=eq.{note['id']}", **NOTES)
    channel.on_postgres_changes(delete_event, by_owner.add, filter=f"owner=eq.{owner}", **NOTES)
    key_id, _ = await subscribed_ids(channel)

    await delete(note["id"])

    deleted = await by_key.wait_for(lambda c: True)
    assert deleted["ids"] == [key_id]  # the owner binding did not match
    assert deleted["data"]["old_record"] == {"id": note["id"]}
    assert "record" not in deleted["data"]


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_select) and tenant migration
# 20260527120000_add_select_columns_to_subscriptions / apply_rls (columns, record and old_record limited to the
# selection plus the primary key; one message per distinct selection)
async def test_a_select_list_limits_columns_and_records_to_it_and_the_key(notes_js, notes_py) -> None:
    owner = str(uuid.uuid4())
    binding = {"event": "UPDATE", **NOTES, "filter": f"owner=eq.{owner}", "select": ["status", "size"]}
    name = await join_js(notes_js, [binding])
    assert (await system_of(notes_js, name))["status"] == "ok"
    inbox, channel = Inbox(), notes_py.channel(topic(), PUBLIC)
    update_event = RealtimePostgresChangesListenEvent.Update
    channel.on_postgres_changes(update_event, inbox.add, filter=binding["filter"], select=["body"], **NOTES)
    channel.on_postgres_changes(update_event, inbox.add, filter=binding["filter"], **NOTES)
    body_id, all_id = await subscribed_ids(channel)

    note = await insert(owner=owner, **NOTE)
    await update(note["id"], status="closed")

    updated = await change_of(notes_js, name, "UPDATE")
    assert (set(updated["new"]), updated["old"]) == ({"id", "status", "size"}, {"id": note["id"]})
    whole = await inbox.wait_for(lambda c: c["ids"] == [all_id])
    selected = await inbox.wait_for(lambda c: c["ids"] == [body_id])
    assert [column["name"] for column in selected["data"]["columns"]] == ["id", "body"]
    assert selected["data"]["record"] == {"id": note["id"], "body": "Hello World"}
    assert set(whole["data"]["record"]) == set(notes.NAMES)


# supabase/realtime: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse_select, reject_select_on_wildcard)
async def test_select_on_a_wildcard_table_is_refused(target: Target, js) -> None:
    name = await join_js(js, [{"event": "*", "schema": "public", "table": "*", "select": ["id"]}])
    assert (await system_of(js, name))["message"] == (
        "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
    )


# --- row visibility --------------------------------------------------------------------------------


# supabase/realtime: tenant migration 20260709120000_fix_apply_rls_filter_role_leak (realtime.apply_rls: a row
# reaches a subscription only if the table's RLS lets its claims select it, whatever its filter or select list).
# Deliberately stricter on DELETE: Supabase sends a DELETE's key to every subscriber of the table (it cannot
# check RLS on a deleted row); the endpoint applies the row rule to the deleted row too.
async def test_a_stranger_naming_anothers_row_or_columns_gets_none_of_it(notes_target: Target) -> None:
    owner, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    note = await insert(owner=owner, **NOTE)
    by_key = {"event": "*", **NOTES, "filter": f"id=eq.{note['id']}"}
    by_owner = {"event": "*", **NOTES, "filter": f"owner=eq.{owner}", "select": ["body"]}
    own = {"event": "INSERT", **NOTES, "filter": f"owner=eq.{stranger}"}
    victim = await JsClient.start(notes_target.http_base, notes_target.user_key(owner))
    intruder = await JsClient.start(notes_target.http_base, notes_target.user_key(stranger))
    try:
        assert (await victim.join(f"user:{owner}", postgres=[by_key]))["status"] == "SUBSCRIBED"
        assert (await intruder.join(f"user:{stranger}", postgres=[by_key, by_owner, own]))["status"] == "SUBSCRIBED"

        await update(note["id"], body="secret")
        await delete(note["id"])
        await insert(owner=stranger, **NOTE)  # published last: the intruder's own row

        for kind in ("UPDATE", "DELETE"):
            await change_of(victim, f"user:{owner}", kind)
        first = await intruder.expect(lambda e: e["type"] == "postgres_changes")
    finally:
        await victim.close()
        await intruder.close()
    assert first["msg"]["new"]["owner"] == stranger  # nothing of the owner's came before it

"""The pure core of `postgres_changes`: Realtime's filter parsing, its subscription checks and its matching.

Expected texts are supabase/realtime's: lib/extensions/postgres_cdc_rls/subscriptions.ex (parse errors, the
doctests), test/realtime_web/channels/realtime_channel_test.exs (the pushed messages) and the trigger
realtime.subscription_check_filters (tenant migration 20260626120000_readd_postgrest_filter_ops.ex).
"""

from __future__ import annotations

import pytest

from realtime_bridge.pg_filters import (
    Condition,
    FilterError,
    PgError,
    check,
    like,
    parse_filter,
    parse_params,
    visible_through_filters,
)

TYPES = {"id": "int4", "name": "text", "status": "varchar", "done": "bool", "at": "timestamptz", "owner": "uuid"}
ROW = {"id": 5, "name": "Hello World", "status": "active", "done": True, "at": "2026-01-02T03:04:05+00:00"}


def sees(text: str, row: dict | None = None) -> bool:
    return visible_through_filters(parse_filter(text), ROW if row is None else row, TYPES)


def error_of(params: dict) -> str:
    with pytest.raises(FilterError) as caught:
        parse_params(params)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("subject=eq.hey", [Condition("subject", "eq", "hey")]),
        ("subject=in.(hidee,ho)", [Condition("subject", "in", "{hidee,ho}")]),
        ("subject=not.like.hey%", [Condition("subject", "like", "hey%", True)]),
        ("id=gt.0,id=lt.100", [Condition("id", "gt", "0"), Condition("id", "lt", "100")]),
        ('name=eq."a,b"', [Condition("name", "eq", "a,b")]),
        ('name=eq."say \\"hi\\""', [Condition("name", "eq", 'say "hi"')]),
        ("   ", []),
    ],
)
def test_filters_parse_as_the_servers_doctests_show(text, expected):
    assert list(parse_filter(text)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("subject=foo.hey", '["foo", "hey"]'),
        ("undefined", '["undefined"]'),
        ("subject=eq", '["eq"]'),
        ("a=eq.1,,b=eq.2", "filter must not contain empty segments (check for extra commas)"),
        ("a=in.1,2", "`in` filter value must be wrapped by parentheses"),
    ],
)
def test_a_malformed_filter_is_refused_with_the_servers_text(text, reason):
    assert error_of({"schema": "public", "table": "t", "filter": text}) == f"Error parsing `filter` params: {reason}"


def test_missing_or_misshapen_params_are_refused_with_the_servers_texts():
    assert error_of({}) == (
        "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{}"
    )
    assert error_of({"table": "t", "filter": "id=eq.1"}).endswith('%{"filter" => "id=eq.1", "table" => "t"}')
    assert error_of({"schema": "public", "table": "t", "select": "id"}).startswith("Error parsing `select` params")
    assert error_of({"schema": "*", "select": ["id"]}).startswith("Column selection is not supported for wildcard")


def test_params_default_like_the_server():
    assert parse_params({"schema": "public"}).table == "*"
    assert parse_params({"table": "t"}).schema == "public"
    assert parse_params({"event": "insert", "schema": "public", "table": "t"}).action == "INSERT"
    assert parse_params({"event": "whatever", "schema": "public", "table": "t"}).action == "*"
    assert parse_params({"schema": "public", "table": "t", "select": [1, "name"]}).select == ("name",)


RAISED = "ERROR P0001 (raise_exception) "
SYNTAX = "ERROR 22P02 (invalid_text_representation) invalid input syntax for type "
TYPE_NEEDED = RAISED + "operator {} requires a text-compatible column type, got {}"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "nope=eq.1"}, RAISED + "invalid column for filter nope"),
        ({"filter": "id=eq.hey"}, SYNTAX + 'integer: "hey"'),
        ({"filter": "id=in.(1,x)"}, SYNTAX + 'integer: "x"'),
        (
            {"filter": "id=eq.9999999999"},
            'ERROR 22003 (numeric_value_out_of_range) value "9999999999" is out of range for type integer',
        ),
        ({"filter": "id=is.nothing"}, RAISED + "invalid value for is filter: must be null, true, false, or unknown"),
        ({"filter": "id=is.true"}, RAISED + "is true filter requires a boolean column, got integer"),
        ({"filter": "status=like.a%"}, TYPE_NEEDED.format("like", "character varying")),
        ({"filter": "id=imatch.1"}, TYPE_NEEDED.format("imatch", "integer")),
        (
            {"filter": "name=match.(a"},
            RAISED + "invalid regular expression for match filter: invalid regular expression: "
            "parentheses () not balanced",
        ),
        (
            {"filter": "at=gt.yesterday-ish"},
            "ERROR 22007 (invalid_datetime_format) invalid input syntax for type timestamp with time zone: "
            '"yesterday-ish"',
        ),
        (
            {"filter": "id=in.(" + ",".join(map(str, range(101))) + ")"},
            RAISED + "too many values for `in` filter. Maximum 100",
        ),
        ({"select": ["id", "ghost"]}, RAISED + "invalid column for select ghost"),
    ],
)
def test_the_subscription_trigger_refuses_what_postgres_would(params, message):
    with pytest.raises(PgError) as caught:
        check(parse_params({"schema": "public", "table": "t", **params}), TYPES)
    assert str(caught.value) == message


def test_the_params_are_logged_in_the_servers_shape():
    params = parse_params({"schema": "public", "table": "t", "filter": "id=in.(1,2),name=not.eq.x", "select": ["id"]})
    filters = '[{"id", "in", "{1,2}", false}, {"name", "eq", "x", true}]'
    assert params.log_text() == f'[event: *, schema: public, table: t, filters: {filters}, select: ["id"]]'


@pytest.mark.parametrize(
    ("text", "delivered"),
    [
        ("id=eq.5", True),
        ("id=eq.6", False),
        ("id=neq.6", True),
        ("id=lt.10", True),
        ("id=lte.4", False),
        ("id=gt.4", True),
        ("id=gte.6", False),
        ("id=in.(1,5,9)", True),
        ("id=in.(1,9)", False),
        ("name=like.Hello%", True),
        ("name=like.hello%", False),
        ("name=ilike.hello_world", True),
        ("name=ilike.%moon%", False),
        ("name=match.o W", True),
        ("name=match.^World", False),
        ("name=imatch.^hello", True),
        ("name=imatch.moon", False),
        ("done=is.true", True),
        ("done=is.false", False),
        ("id=isdistinct.6", True),
        ("id=isdistinct.5", False),
        ("id=not.eq.5", False),
        ("id=not.in.(1,9)", True),
        ("name=not.like.Hello%", False),
        ("at=gt.2026-01-01T00:00:00Z", True),
        ("at=lt.2026-01-02 03:04:05+00", False),
        ("id=gt.1,name=like.%World", True),
        ("id=gt.1,name=like.%Moon", False),
        ("owner=is.null", False),  # a column the row does not carry fails the filter
    ],
)
def test_each_operator_delivers_or_not_as_postgres_compares(text, delivered):
    assert sees(text) is delivered


def test_a_null_fails_every_operator_but_is_and_isdistinct_negated_or_not():
    row = {**ROW, "name": None}
    assert not sees("name=eq.x", row)
    assert not sees("name=neq.x", row)
    assert not sees("name=not.eq.x", row)
    assert not sees("name=not.like.x", row)
    assert sees("name=is.null", row)
    assert sees("name=isdistinct.x", row)
    assert not sees("name=not.is.null", row)


def test_like_escapes_and_matches_the_whole_text():
    assert like("100%", "100\\%")
    assert not like("1000", "100\\%")
    assert like("a\nb", "a_b")
    assert not like("xab", "ab")

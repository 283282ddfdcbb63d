"""Rollback (seed §8.4): every migration reverses, and the Supabase objects come and go with theirs.

The Supabase test runs ``manage.py migrate`` against a throwaway PostgreSQL database prepared like a
Supabase one: an ``auth`` schema with ``auth.uid()``/``auth.jwt()`` reading the request's JWT claims the
way Supabase's do, a ``realtime`` schema with ``realtime.topic()`` and a ``realtime.messages`` table, and
a ``supabase_realtime`` publication. It is dropped afterwards.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sessions.tests.test_project_access_supabase import FRONTEND_SQL
from velocity.testing import SUPABASE_AUTH_STUB, SUPABASE_ROLES_SQL, embedded_env, require
from velocity.testing import manage as velocity_manage

SUPABASE_STUB = (
    SUPABASE_ROLES_SQL
    + SUPABASE_AUTH_STUB
    + """
-- As on Supabase: new tables in public are granted to the Data API's roles.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated;
CREATE SCHEMA realtime;
CREATE FUNCTION realtime.topic() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('realtime.topic', true), '') $$;
CREATE TABLE realtime.messages (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  topic text NOT NULL,
  extension text NOT NULL,
  payload jsonb,
  event text,
  private boolean DEFAULT false,
  updated_at timestamp without time zone NOT NULL DEFAULT now(),
  inserted_at timestamp without time zone NOT NULL DEFAULT now(),
  PRIMARY KEY (id, inserted_at)
);
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
CREATE PUBLICATION supabase_realtime;
"""
)
SESSION_POLICIES = {"Users can access own sessions", "Service role can manage sessions"}


def our_tables() -> set[str]:
    return {t for t in connection.introspection.table_names() if t.startswith(("preview_", "machines_"))}


@pytest.mark.django_db(transaction=True)
def test_the_whole_schema_migrates_to_zero_and_back() -> None:
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    assert "preview_flags" in our_tables()
    executor.migrate([(app, None) for app, _ in leaves])
    assert our_tables() == set()
    assert "django_migrations" in connection.introspection.table_names()
    executor = MigrationExecutor(connection)
    executor.migrate(leaves)
    assert {"preview_sessions", "preview_flags", "preview_quotas", "machines_machine"} <= our_tables()
    assert MigrationExecutor(connection).migration_plan(leaves) == []


def server_params() -> dict[str, Any]:
    settings = connection.settings_dict
    return {
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "user": settings["USER"] or "postgres",
        "password": settings["PASSWORD"] or None,
    }


@pytest.fixture
def supabase_db() -> Iterator[dict[str, Any]]:
    require(
        connection.vendor == "postgresql",
        "the Supabase migration needs PostgreSQL (run ./.ci/run, which sets DATABASE_URL)",
    )
    params, name = server_params(), f"velocity_supabase_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(dbname=name, autocommit=True, **params) as db:
            db.execute(SUPABASE_STUB)
        yield {**params, "dbname": name}
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(db: dict[str, Any], tmp_path: Path, *args: str, **env_extra: str) -> None:
    password = f":{db['password']}" if db["password"] else ""
    url = f"postgres://{db['user']}{password}@{db['host']}:{db['port']}/{db['dbname']}"
    velocity_manage(embedded_env(tmp_path, DATABASE_URL=url, **env_extra), *args, timeout=180)


def supabase_state(db: dict[str, Any]) -> dict[str, Any]:
    with psycopg.connect(**db) as conn:
        rls = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.preview_sessions'::regclass")
        published = conn.execute(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
            " AND tablename = 'preview_sessions'"
        )
        policies = conn.execute("SELECT schemaname, tablename, policyname FROM pg_policies")
        return {
            "rls": rls.fetchone()[0],  # type: ignore[index]
            "published": published.fetchone()[0] == 1,  # type: ignore[index]
            "session_policies": {p for s, t, p in policies.fetchall() if t == "preview_sessions"},
            "channel_policies": conn.execute(
                "SELECT count(*) FROM pg_policies WHERE schemaname = 'realtime' AND tablename = 'messages'"
            ).fetchone()[0],  # type: ignore[index]
        }


def as_claims(conn: psycopg.Connection[Any], role: str, claims: dict[str, str], topic: str) -> None:
    """Act as Supabase does for a request: a non-owner role, the JWT's claims, the channel's topic."""
    conn.execute(f'SET LOCAL ROLE "{role}"')
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
    conn.execute("SELECT set_config('realtime.topic', %s, true)", [topic])


def may(db: dict[str, Any], role: str, claims: dict[str, str], topic: str, action: str) -> bool:
    """Realtime's checks: `read` selects a message of the topic back under RLS, `write` inserts one."""
    with psycopg.connect(**db) as conn:
        probe = conn.execute(
            "INSERT INTO realtime.messages (topic, extension, private) VALUES (%s, 'broadcast', true) RETURNING id",
            [topic],
        ).fetchone()[0]  # type: ignore[index]
        as_claims(conn, role, claims, topic)
        if action == "read":
            return conn.execute("SELECT count(*) FROM realtime.messages WHERE id = %s", [probe]).fetchone()[0] == 1  # type: ignore[index]
        try:
            conn.execute(
                "INSERT INTO realtime.messages (topic, extension, private) VALUES (%s, 'broadcast', true)", [topic]
            )
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True


def visible_sessions(db: dict[str, Any], role: str, claims: dict[str, str]) -> int:
    with psycopg.connect(**db) as conn:
        as_claims(conn, role, claims, "")
        return int(conn.execute("SELECT count(*) FROM public.preview_sessions").fetchone()[0])  # type: ignore[index]


@pytest.fixture
def probe_role(supabase_db: dict[str, Any]) -> Iterator[str]:
    """A role like Supabase's ``authenticated``: not the tables' owner, so row-level security applies."""
    role = f"velocity_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(autocommit=True, **supabase_db) as conn:
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    yield role
    with psycopg.connect(dbname="postgres", autocommit=True, **server_params()) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{supabase_db["dbname"]}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def grant_and_seed(db: dict[str, Any], role: str, people: dict[str, uuid.UUID]) -> dict[str, uuid.UUID]:
    """Project p1 (owner, an editor, a viewer), a session, and machines: live on p1, destroyed on p1, live on p2."""
    machines = {"live": uuid.uuid4(), "destroyed": uuid.uuid4(), "other": uuid.uuid4()}
    with psycopg.connect(autocommit=True, **db) as conn:
        for schema in ("public", "auth", "realtime"):
            conn.execute(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"')
        conn.execute(f'GRANT SELECT ON public.preview_sessions TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT ON realtime.messages TO "{role}"')
        conn.execute(
            "INSERT INTO public.preview_sessions (id, user_id, project_id, status, preview_url, framework,"
            " created_at, updated_at, last_activity_source, end_reason, end_detail, memory_mb, boot_timings)"
            " VALUES (%s, %s, 'p1', 'active', '', '', now(), now(), '', '', '', 512, '{}')",
            [uuid.uuid4(), people["owner"]],
        )
        project = conn.execute(
            "INSERT INTO public.preview_projects (id, project_id, owner_id, created_at, updated_at)"
            " VALUES (%s, 'p1', %s, now(), now()) RETURNING id",
            [uuid.uuid4(), people["owner"]],
        ).fetchone()[0]  # type: ignore[index]
        for name in ("editor", "viewer"):
            conn.execute(
                "INSERT INTO public.preview_project_members (project_id, user_id, role, created_at)"
                " VALUES (%s, %s, %s, now())",
                [project, people[name], name],
            )
        for name, state in (("live", "started"), ("destroyed", "destroyed"), ("other", "started")):
            conn.execute(
                "INSERT INTO public.machines_machine (id, provider, provider_machine_id, app, region, image,"
                " cpu_kind, cpus, memory_mb, state, address, token_hash, is_warm, created_at, updated_at)"
                " VALUES (%s, 'fly', %s, '', '', '', 'shared', 1, 512, %s, '', '', false, now(), now())",
                [machines[name], name, state],
            )
    return machines


def agent(machine: uuid.UUID, project: str) -> dict[str, str]:
    """The claims of a machine's realtime key (machines.services.machine_realtime_key)."""
    return {
        "role": "authenticated",
        "aud": "velocity_agent",
        "sub": str(machine),
        "velocity_project": project,
        "velocity_machine": str(machine),
    }


def user(sub: uuid.UUID) -> dict[str, str]:
    return {"role": "authenticated", "aud": "authenticated", "sub": str(sub)}


def table_access(db: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    """(row-level security on, `authenticated` may select) for each table of ours."""
    with psycopg.connect(**db) as conn:
        rows = conn.execute(
            "SELECT relname, relrowsecurity, has_table_privilege('authenticated', oid, 'SELECT')"
            " FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ).fetchall()
    return {name: (rls, select) for name, rls, select in rows}


def test_the_supabase_migration_secures_sessions_and_channels_and_reverses(
    supabase_db: dict[str, Any], probe_role: str, tmp_path: Path
) -> None:
    manage(supabase_db, tmp_path, "migrate", "--no-input")
    state = supabase_state(supabase_db)
    assert (state["rls"], state["published"], state["session_policies"]) == (True, True, SESSION_POLICIES)
    assert state["channel_policies"] == 3

    people = {name: uuid.uuid4() for name in ("owner", "editor", "viewer", "stranger")}
    machines = grant_and_seed(supabase_db, probe_role, people)
    assert visible_sessions(supabase_db, probe_role, {"sub": str(people["owner"])}) == 1
    assert visible_sessions(supabase_db, probe_role, {"sub": str(people["stranger"])}) == 0
    assert visible_sessions(supabase_db, probe_role, {"role": "service_role"}) == 1
    expected = {
        "owner": (user(people["owner"]), True, True),
        "editor": (user(people["editor"]), True, True),
        "viewer": (user(people["viewer"]), True, False),
        "stranger": (user(people["stranger"]), False, False),
        "the project's agent": (agent(machines["live"], "p1"), True, True),
        "a destroyed machine's agent": (agent(machines["destroyed"], "p1"), False, False),
        "another project's agent": (agent(machines["other"], "p2"), False, False),
        "a user token claiming the project": ({**user(people["stranger"]), "velocity_project": "p1"}, False, False),
        "the service role": ({"role": "service_role"}, True, True),
    }
    for who, (claims, read, write) in expected.items():
        seen = (
            may(supabase_db, probe_role, claims, "project:p1", "read"),
            may(supabase_db, probe_role, claims, "project:p1", "write"),
        )
        assert seen == (read, write), who
    assert not may(supabase_db, probe_role, user(people["owner"]), "project:p2", "read")
    own, other = f"user:{people['owner']}", f"user:{people['stranger']}"
    assert may(supabase_db, probe_role, user(people["owner"]), own, "read")
    assert not may(supabase_db, probe_role, user(people["owner"]), own, "write")
    assert not may(supabase_db, probe_role, user(people["owner"]), other, "read")
    assert not may(supabase_db, probe_role, agent(machines["live"], "p1") | {"sub": str(people["owner"])}, own, "read")

    access = table_access(supabase_db)
    assert access["preview_sessions"][1] is True
    open_tables = [name for name, (rls, select) in access.items() if name != "preview_sessions" and (select or not rls)]
    assert open_tables == []

    manage(supabase_db, tmp_path, "migrate", "preview_sessions", "0004", "--no-input")
    state = supabase_state(supabase_db)
    assert (state["rls"], state["published"], state["session_policies"], state["channel_policies"]) == (
        False,
        False,
        set(),
        0,
    )


def test_with_the_supabase_backend_the_channel_policy_asks_the_frontends_own_table(
    supabase_db: dict[str, Any], tmp_path: Path
) -> None:
    manage(supabase_db, tmp_path, "migrate", "--no-input")
    people, project = {name: uuid.uuid4() for name in ("owner", "member", "stranger")}, uuid.uuid4()
    with psycopg.connect(autocommit=True, **supabase_db) as conn:
        conn.execute(FRONTEND_SQL)
        conn.execute("GRANT USAGE ON SCHEMA public, realtime TO authenticated")
        conn.execute("GRANT SELECT, INSERT ON realtime.messages TO authenticated")
        conn.execute("INSERT INTO frontend.projects (id, owner_id) VALUES (%s, %s)", [project, people["owner"]])
        conn.execute("INSERT INTO frontend.project_members VALUES (%s, %s)", [project, people["member"]])
    backend = {"PROJECT_ACCESS_BACKEND": "supabase", "PROJECT_ACCESS_SUPABASE_TABLE": "frontend.projects"}
    manage(supabase_db, tmp_path, "migrate", "--no-input", **backend)  # the next deploy's release command
    topic = f"project:{project}"
    for who, allowed in (("owner", True), ("member", True), ("stranger", False)):
        claims = user(people[who])
        seen = (
            may(supabase_db, "authenticated", claims, topic, "read"),
            may(supabase_db, "authenticated", claims, topic, "write"),
        )
        assert seen == (allowed, allowed), who


@pytest.mark.django_db
def test_the_supabase_migration_does_nothing_on_a_plain_database() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = 'preview_sessions'")
            assert cursor.fetchone()[0] == 0
    executor = MigrationExecutor(connection)
    assert ("preview_sessions", "0005_supabase_realtime") in executor.loader.applied_migrations

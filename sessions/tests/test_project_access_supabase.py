"""The Supabase project-access backend against a real PostgreSQL with a frontend-like projects table.

The table lives in a schema ``frontend`` of this run's test database (so it cannot collide with a
``public.projects`` of our own), guarded by the policies a Supabase app would write: owners, and members
through ``project_members``. The roles ``authenticated`` and ``anon`` are cluster-wide, so they are created
if missing and never dropped (another run on the same server may be using them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import SettingsWrapper

from sessions.project_access_supabase import ProjectAccessUnavailable, id_condition, supabase_project_has_access
from velocity.auth import Claims, issue_token, verify_token
from velocity.testing import SUPABASE_AUTH_STUB, SUPABASE_ROLES_SQL, require

pg = pytest.mark.django_db(transaction=True)

FRONTEND_SQL = """
CREATE SCHEMA frontend;
CREATE TABLE frontend.projects (id uuid PRIMARY KEY, owner_id uuid NOT NULL, name text NOT NULL DEFAULT '');
CREATE TABLE frontend.project_members (
  project_id uuid NOT NULL REFERENCES frontend.projects (id) ON DELETE CASCADE,
  user_id uuid NOT NULL,
  PRIMARY KEY (project_id, user_id)
);
ALTER TABLE frontend.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE frontend.project_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY "owners" ON frontend.projects FOR SELECT TO authenticated USING (owner_id = auth.uid());
CREATE POLICY "members" ON frontend.projects FOR SELECT TO authenticated USING (
  EXISTS (SELECT 1 FROM frontend.project_members m WHERE m.project_id = projects.id AND m.user_id = auth.uid())
);
CREATE POLICY "own memberships" ON frontend.project_members FOR SELECT TO authenticated
  USING (user_id = auth.uid());
GRANT USAGE ON SCHEMA auth, frontend TO authenticated;
GRANT SELECT ON frontend.projects, frontend.project_members TO authenticated;
"""


class Frontend:
    """The frontend's tables, written as their owner (the orchestrator's superuser in these tests)."""

    def sql(self, statement: str, params: list[Any] | None = None) -> None:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)

    def project(self, *, owner: uuid.UUID) -> str:
        project_id = uuid.uuid4()
        self.sql("INSERT INTO frontend.projects (id, owner_id) VALUES (%s, %s)", [project_id, owner])
        return str(project_id)

    def add_member(self, *, project_id: str, user: uuid.UUID) -> None:
        self.sql("INSERT INTO frontend.project_members VALUES (%s, %s)", [project_id, user])

    def remove_member(self, *, project_id: str, user: uuid.UUID) -> None:
        self.sql("DELETE FROM frontend.project_members WHERE project_id = %s AND user_id = %s", [project_id, user])


@pytest.fixture
def frontend(settings: SettingsWrapper) -> Iterator[Frontend]:
    require(
        connection.vendor == "postgresql",
        "the Supabase backend needs PostgreSQL (run ./.ci/run, which sets DATABASE_URL)",
    )
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pa"}}
    settings.PROJECT_ACCESS_SUPABASE_TABLE = "frontend.projects"
    settings.PROJECT_ACCESS_CACHE_SECONDS = 10
    tables = Frontend()
    tables.sql(SUPABASE_ROLES_SQL + SUPABASE_AUTH_STUB + FRONTEND_SQL)
    yield tables
    tables.sql("DROP SCHEMA frontend CASCADE; DROP SCHEMA auth CASCADE")


def claims_of(user: uuid.UUID, role: str = "authenticated") -> Claims:
    return verify_token(issue_token(sub=user, role=role))


def roles_now() -> tuple[str, str, str]:
    """``current_user``, ``session_user`` and the claims setting, as the rest of the request would see them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user, coalesce(current_setting('request.jwt.claims', true), '')")
        current, session, claims = cursor.fetchone()
    return current, session, claims


@pg
def test_the_owner_and_a_member_may_use_the_project(frontend: Frontend) -> None:
    owner, member = uuid.uuid4(), uuid.uuid4()
    project_id = frontend.project(owner=owner)
    frontend.add_member(project_id=project_id, user=member)
    assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
    assert supabase_project_has_access(claims=claims_of(member), project_id=project_id)


@pg
def test_a_stranger_may_not_although_the_orchestrator_is_a_superuser(frontend: Frontend) -> None:
    project_id = frontend.project(owner=uuid.uuid4())
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")
        assert cursor.fetchone() == (True,)  # RLS would not apply to us: it does to ``authenticated``
    assert not supabase_project_has_access(claims=claims_of(uuid.uuid4()), project_id=project_id)


@pg
@pytest.mark.parametrize("project_id", [str(uuid.uuid4()), "my-app", "a" * 200, "{" + str(uuid.uuid4()) + "}"])
def test_an_unknown_or_malformed_project_is_no_access_without_an_error(frontend: Frontend, project_id: str) -> None:
    frontend.project(owner=(user := uuid.uuid4()))
    assert not supabase_project_has_access(claims=claims_of(user), project_id=project_id)


@pg
def test_an_uppercase_uuid_names_the_same_project(frontend: Frontend) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id.upper())


@pg
@pytest.mark.parametrize("role", ["anon", "service_role", "supabase_admin"])
def test_a_caller_whose_role_is_not_authenticated_is_not_asked(frontend: Frontend, role: str) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    claims = Claims(sub=owner, role=role, exp=0, claims={"sub": str(owner), "role": role})
    with CaptureQueriesContext(connection) as queries:
        assert not supabase_project_has_access(claims=claims, project_id=project_id)
    assert len(queries) == 0


@pg
def test_answers_yes_and_no_are_cached_within_the_ttl(frontend: Frontend) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    stranger = uuid.uuid4()
    assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
    assert not supabase_project_has_access(claims=claims_of(stranger), project_id=project_id)
    with CaptureQueriesContext(connection) as queries:
        assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
        assert not supabase_project_has_access(claims=claims_of(stranger), project_id=project_id)
    assert len(queries) == 0


@pg
def test_a_changed_membership_is_seen_once_the_ttl_has_passed(frontend: Frontend) -> None:
    project_id, member, newcomer = frontend.project(owner=uuid.uuid4()), uuid.uuid4(), uuid.uuid4()
    frontend.add_member(project_id=project_id, user=member)
    with time_machine.travel(datetime(2030, 1, 1, tzinfo=UTC), tick=False) as clock:
        assert supabase_project_has_access(claims=claims_of(member), project_id=project_id)
        assert not supabase_project_has_access(claims=claims_of(newcomer), project_id=project_id)
        frontend.remove_member(project_id=project_id, user=member)
        frontend.add_member(project_id=project_id, user=newcomer)
        clock.shift(9)
        assert supabase_project_has_access(claims=claims_of(member), project_id=project_id)
        clock.shift(2)
        assert not supabase_project_has_access(claims=claims_of(member), project_id=project_id)
        assert supabase_project_has_access(claims=claims_of(newcomer), project_id=project_id)


@pg
def test_a_zero_ttl_asks_every_time(frontend: Frontend, settings: SettingsWrapper) -> None:
    settings.PROJECT_ACCESS_CACHE_SECONDS = 0
    project_id, member = frontend.project(owner=uuid.uuid4()), uuid.uuid4()
    frontend.add_member(project_id=project_id, user=member)
    assert supabase_project_has_access(claims=claims_of(member), project_id=project_id)
    frontend.remove_member(project_id=project_id, user=member)
    assert not supabase_project_has_access(claims=claims_of(member), project_id=project_id)


@pg
@pytest.mark.parametrize(
    ("table", "column"), [("frontend.missing", "id"), ("frontend.projects", "missing"), ("a.b.c", "id")]
)
def test_a_misconfigured_table_refuses_as_unavailable(
    frontend: Frontend, settings: SettingsWrapper, table: str, column: str
) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    settings.PROJECT_ACCESS_SUPABASE_TABLE, settings.PROJECT_ACCESS_SUPABASE_ID_COLUMN = table, column
    for _ in range(2):  # a failure is not cached (as a "no" or otherwise): the second call asks again
        with pytest.raises(ProjectAccessUnavailable):
            supabase_project_has_access(claims=claims_of(owner), project_id=project_id)


@pg
def test_the_role_switch_ends_with_the_call(frontend: Frontend) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
    current, session, claims = roles_now()
    assert (current, claims) == (session, "")


@pg
def test_the_role_switch_ends_with_the_call_inside_the_callers_transaction(frontend: Frontend) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    with transaction.atomic():
        assert supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
        current, session, claims = roles_now()
        frontend.sql("INSERT INTO frontend.projects (id, owner_id) VALUES (%s, %s)", [uuid.uuid4(), owner])
    assert (current, claims) == (session, "")


@pg
@pytest.mark.parametrize("outer_transaction", [False, True])
def test_a_failure_after_the_switch_rolls_it_back(frontend: Frontend, outer_transaction: bool) -> None:
    project_id = frontend.project(owner=(owner := uuid.uuid4()))
    frontend.sql("REVOKE SELECT ON frontend.projects FROM authenticated")  # refused only once we are the caller
    with transaction.atomic() if outer_transaction else nullcontext():
        with pytest.raises(ProjectAccessUnavailable):
            supabase_project_has_access(claims=claims_of(owner), project_id=project_id)
        current, session, claims = roles_now()
    assert (current, claims) == (session, "")


@pg
def test_a_slow_policy_is_cut_short_and_refuses(frontend: Frontend, settings: SettingsWrapper) -> None:
    settings.PROJECT_ACCESS_SUPABASE_TIMEOUT_MS = 50
    project_id = frontend.project(owner=uuid.uuid4())
    frontend.sql('CREATE POLICY "slow" ON frontend.projects FOR SELECT USING ((SELECT true FROM pg_sleep(2)))')
    with pytest.raises(ProjectAccessUnavailable):
        supabase_project_has_access(claims=claims_of(uuid.uuid4()), project_id=project_id)
    assert roles_now()[0] == roles_now()[1]


def test_the_id_condition_keeps_the_columns_type() -> None:
    some_uuid = str(uuid.uuid4())
    assert id_condition(column_type="uuid", column='"id"', project_id=some_uuid) == '"id" = %s'
    assert id_condition(column_type="uuid", column='"id"', project_id="my-app") is None
    assert id_condition(column_type="text", column='"slug"', project_id="my-app") == '"slug" = %s'
    assert id_condition(column_type="character varying(64)", column='"slug"', project_id="x") == '"slug" = %s'
    assert id_condition(column_type="bigint", column='"id"', project_id="my-app") == '"id"::text = %s'

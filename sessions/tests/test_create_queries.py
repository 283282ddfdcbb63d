"""A create's round trips to the database: with a remote database (Supabase's, across a network) each query is
one, so the warm path's create is kept to what it must ask and write."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from machines.models import Machine
from machines.tests.test_pool import warm_machines
from sessions import services
from sessions.access import ProjectForbidden
from sessions.models import PreviewSession, Project, Quota
from velocity.auth import user_claims

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def default_quota() -> None:
    """As after the migrations (a transactional test's flush removes the row, and recreating it is a savepoint)."""
    Quota.objects.get_or_create(user_id=None)


def create(user: uuid.UUID, project_id: str) -> tuple[PreviewSession, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        session, created = services.session_create(
            claims=user_claims(user), user_id=user, project_id=project_id, memory_mb=512, now=timezone.now()
        )
    assert created
    sql = [query["sql"] for query in queries.captured_queries]
    return session, sql[: sql.index("COMMIT")]  # what is announced and queued after the commit is not counted


def test_a_warm_create_is_written_with_its_machine_in_one_insert_and_no_savepoint() -> None:
    [machine] = warm_machines(1)
    user = uuid.uuid4()
    Project.objects.create(project_id="own", owner_id=user)
    session, sql = create(user, "own")
    assert session.machine_id == machine.id and session.machine_started_at == session.created_at
    assert not [statement for statement in sql if "SAVEPOINT" in statement]
    assert len([statement for statement in sql if statement.startswith("UPDATE")]) == 1  # the machine's claim only
    # The block and live session (before the lock and under it), flags, lock, project access,
    # quota (its row, usage, the month's spend), the claim (select, update, event), the row; BEGIN.
    assert len(sql) <= 13, sql
    machine.refresh_from_db()
    assert (machine.is_warm, machine.assigned_at) == (False, session.created_at)


def test_a_new_project_is_registered_in_one_insert_and_a_taken_one_is_refused() -> None:
    user, stranger = uuid.uuid4(), uuid.uuid4()
    _, sql = create(user, "fresh")
    assert Project.objects.get(project_id="fresh").owner_id == user
    assert (
        len([statement for statement in sql if statement.startswith("INSERT") and '"preview_projects"' in statement])
        == 1
    )
    assert not [statement for statement in sql if "SAVEPOINT" in statement]
    with pytest.raises(ProjectForbidden):
        services.session_create(
            claims=user_claims(stranger), user_id=stranger, project_id="fresh", memory_mb=512, now=timezone.now()
        )
    assert not PreviewSession.objects.filter(user_id=stranger).exists()
    assert Project.objects.get(project_id="fresh").owner_id == user


def test_a_cold_create_without_a_warm_machine_is_queued_with_no_machine() -> None:
    user = uuid.uuid4()
    session, _ = create(user, "cold")
    assert (session.machine_id, session.machine_created_at, session.machine_started_at) == (None, None, None)
    assert not Machine.objects.exists()

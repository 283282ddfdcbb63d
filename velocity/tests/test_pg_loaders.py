"""The C-backed ``timestamptz`` loader gives exactly what Django's own loader gives, on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from velocity.pg_loaders import c_timestamptz_loader
from velocity.testing import require

VALUES = (
    "2026-12-02 04:07:07.375337+00",
    "2020-01-01 00:00:00+05",
    "1999-03-28 01:59:59.999999-03:30",
    "2026-03-29 02:30:00+02",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
)
SQL = "SELECT " + ", ".join(f"'{value}'::timestamptz" for value in VALUES) + ", NULL::timestamptz"


def _postgresql() -> None:
    require(connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL)")
    require(c_timestamptz_loader() is not None, "needs psycopg's C extension (psycopg[binary] in requirements.txt)")


def _read(cursor: Any) -> tuple[Any, ...]:
    cursor.execute(SQL)
    return tuple(cursor.fetchone())


@pytest.mark.django_db
def test_connections_parse_timestamptz_in_c_with_djangos_values() -> None:
    _postgresql()
    with connection.cursor() as cursor:
        loader = connection.connection.adapters.get_loader(1184, 0)
        ours = _read(cursor)
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own, on this cursor only
        djangos = _read(cursor)
    assert loader.__name__ == "FastTzLoader"
    assert loader.timezone is connection.timezone
    assert ours == djangos
    assert [value.tzinfo for value in ours[:-1]] == [value.tzinfo for value in djangos[:-1]]
    assert ours[0].tzinfo is UTC and ours[-1] is None


@pytest.mark.django_db
def test_the_orm_reads_dates_through_it() -> None:
    _postgresql()
    from sessions.models import Project

    project = Project.objects.create(project_id="loader-check", owner_id=uuid.uuid4())
    assert Project.objects.values_list("created_at", flat=True).get(pk=project.pk) == project.created_at

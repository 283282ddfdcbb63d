"""Project access decided by the frontend's own row-level security (``PROJECT_ACCESS_BACKEND=supabase``).

The frontend owns a projects table in the orchestrator's PostgreSQL, guarded by its RLS policies. We ask it
the way PostgREST would: in a transaction of our own, ``SET LOCAL ROLE authenticated`` and the caller's
verified claims in ``request.jwt.claims``, then select the project's row. A row means access; the
application's policies (owners, members, teams...) decide, so we never re-implement them.

Three rules shape the code:

- The role switch must never outlive the lookup. The block is always rolled back: it only reads, and only a
  rollback undoes ``SET LOCAL`` inside a savepoint (a released savepoint keeps it until the outer
  transaction ends, i.e. for the rest of the caller's request).
- A database error refuses (``ProjectAccessUnavailable``); nothing but a visible row grants.
- Answers, positive and negative, are cached for ``PROJECT_ACCESS_CACHE_SECONDS`` per user and project.

The id column's type is looked up in the catalog (as the orchestrator's user, before the role switch) rather
than always comparing ``id::text``: a cast would hide the primary key's index, and since the cast is not
leakproof PostgreSQL would evaluate every policy on every row first. So a ``uuid`` column is compared as a
uuid and an id that is not a UUID is "no access" without a query of the table; text columns compare
directly; any other type falls back to the (correct, slower) text comparison.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from django.conf import settings
from django.core.cache import cache
from django.db import Error as DatabaseError
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from velocity.auth import Claims

logger = logging.getLogger(__name__)

ASSUMED_ROLE = "authenticated"
PROJECT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
# Only the canonical spelling (any case): PostgreSQL also reads braces or bare hex, which would let two
# different project id strings (two channels, two live sessions) name one project.
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Unquoted-style identifiers only: quoting them is then trivially safe, and a schema may qualify the table.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
CACHE_PREFIX = "project-access:supabase"

COLUMN_TYPE_SQL = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
    " WHERE attrelid = %s::regclass AND attname = %s AND attnum > 0 AND NOT attisdropped"
)
# PostgREST sets the claims as one JSON document and, for older policies, ``request.jwt.claim.<name>``.
CLAIMS_SQL = (
    "SELECT set_config('statement_timeout', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('request.jwt.claim.sub', %s, true), set_config('request.jwt.claim.role', %s, true)"
)


class ProjectAccessUnavailable(Exception):
    """The project table could not be asked (database error, misconfiguration): refuse, never grant."""


def quoted_table(name: str) -> str:
    """``schema.table`` or ``table`` quoted for SQL; ``ValueError`` for anything else."""
    parts = name.split(".")
    if len(parts) > 2:
        raise ValueError("a table name has at most a schema and a name")
    return ".".join(quoted_identifier(part) for part in parts)


def quoted_identifier(name: str) -> str:
    if not IDENTIFIER_PATTERN.fullmatch(name):
        raise ValueError("an identifier is letters, digits, _ and $, starting with a letter or _, up to 63")
    return connection.ops.quote_name(name)


def supabase_project_has_access(*, claims: Claims, project_id: str) -> bool:
    """May the caller use ``project_id``? Only for ``authenticated`` callers whose row the policies show."""
    if claims.role != ASSUMED_ROLE or claims.sub is None or not PROJECT_ID_PATTERN.fullmatch(project_id):
        return False
    # Hashed: a 200-character id would make a key longer than memcached accepts.
    key = f"{CACHE_PREFIX}:{claims.sub}:{hashlib.sha256(project_id.encode()).hexdigest()}"
    cached = _cache_get(key=key)
    if cached is not None:
        return cached
    allowed = _ask_the_table(claims=claims, project_id=project_id)
    _cache_set(key=key, allowed=allowed)
    return allowed


def _cache_get(*, key: str) -> bool | None:
    if settings.PROJECT_ACCESS_CACHE_SECONDS <= 0:
        return None
    try:
        value = cache.get(key)
    except Exception:
        # The cache only saves queries: when it is down, ask the database instead of failing the request.
        logger.warning("project access cache read failed", extra={"key": key}, exc_info=True)
        return None
    return value if isinstance(value, bool) else None


def _cache_set(*, key: str, allowed: bool) -> None:
    if settings.PROJECT_ACCESS_CACHE_SECONDS <= 0:
        return
    try:
        cache.set(key, allowed, timeout=settings.PROJECT_ACCESS_CACHE_SECONDS)
    except Exception:
        logger.warning("project access cache write failed", extra={"key": key}, exc_info=True)


def _ask_the_table(*, claims: Claims, project_id: str) -> bool:
    try:
        return _lookup_rolled_back(claims=claims, project_id=project_id)
    except (DatabaseError, ValueError) as exc:
        logger.warning(
            "project access lookup failed",
            extra={"project_id": project_id, "user_id": str(claims.sub), "error": type(exc).__name__},
            exc_info=True,
        )
        raise ProjectAccessUnavailable("the project table could not be asked") from exc


def _lookup_rolled_back(*, claims: Claims, project_id: str) -> bool:
    table = quoted_table(settings.PROJECT_ACCESS_SUPABASE_TABLE)
    # A savepoint when the caller is already in a transaction; rolled back either way (see the docstring).
    with transaction.atomic(), connection.cursor() as cursor:
        try:
            return _lookup(cursor=cursor, claims=claims, table=table, project_id=project_id)
        finally:
            transaction.set_rollback(True)


def _lookup(*, cursor: CursorWrapper, claims: Claims, table: str, project_id: str) -> bool:
    column_name = settings.PROJECT_ACCESS_SUPABASE_ID_COLUMN
    column_type = _column_type(cursor=cursor, table=table, column_name=column_name)
    condition = id_condition(column_type=column_type, column=quoted_identifier(column_name), project_id=project_id)
    if condition is None:
        return False
    _become_the_caller(cursor=cursor, claims=claims)
    cursor.execute(f"SELECT 1 FROM {table} WHERE {condition} LIMIT 1", [project_id])  # noqa: S608  (quoted)
    return cursor.fetchone() is not None


def _column_type(*, cursor: CursorWrapper, table: str, column_name: str) -> str:
    cursor.execute(COLUMN_TYPE_SQL, [table, column_name])
    row = cursor.fetchone()
    if row is None:
        raise ValueError("the project id column does not exist")
    return str(row[0])


def id_condition(*, column_type: str, column: str, project_id: str) -> str | None:
    """The WHERE condition matching ``project_id`` in a column of that type; None when nothing can match."""
    if column_type == "uuid":
        return f"{column} = %s" if UUID_PATTERN.fullmatch(project_id) else None
    if column_type == "text" or column_type.startswith("character varying"):
        return f"{column} = %s"
    # Other types (integers...) compare as text: right for any id, but without the index (see the docstring).
    return f"{column}::text = %s"


def _become_the_caller(*, cursor: CursorWrapper, claims: Claims) -> None:
    cursor.execute(f"SET LOCAL ROLE {ASSUMED_ROLE}")
    timeout = f"{settings.PROJECT_ACCESS_SUPABASE_TIMEOUT_MS}ms"
    payload = json.dumps(claims.claims, separators=(",", ":"))
    cursor.execute(CLAIMS_SQL, [timeout, payload, str(claims.sub), claims.role])

"""``timestamptz`` parsed by psycopg's C loader on every PostgreSQL connection.

Django registers its own ``timestamptz`` loader on each connection (``psycopg_any.BaseTzLoader``): it subclasses
psycopg's pure-Python ``TimestamptzLoader`` to swap in the connection's time zone, and so every date the ORM reads
is parsed in Python even where psycopg's C extension is installed. Profiling the session list under 16
concurrent clients put a quarter of the database layer's time in that parser (docs/benchmarks.md, *REST under
load, third round*). The loader here gives the same values (the same instant, with the same ``tzinfo`` as
Django's) from psycopg's C loader; where the C extension is missing, Django's loader stays.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from datetime import datetime, tzinfo
from typing import Any

from django.db.backends.signals import connection_created


@functools.cache
def c_timestamptz_loader() -> Any | None:
    """psycopg's C ``TimestamptzLoader`` class, or None without the C extension (looked up once per process)."""
    import psycopg

    if psycopg.pq.__impl__ == "python":
        return None
    for module in ("psycopg_binary._psycopg", "psycopg_c._psycopg"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module).TimestamptzLoader
    return None


@functools.cache
def fast_tz_loader(zone: tzinfo | None, c_loader: Any) -> type:
    """A loader class doing what Django's ``SpecificTzLoader`` for ``zone`` does, with the parsing in C (a C loader
    class cannot be subclassed, so it is held and called). One class per zone, made once."""
    from psycopg.adapt import Loader

    class FastTzLoader(Loader):
        timezone = zone  # read by Django's DatabaseWrapper.create_cursor, as on its own loader

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._parse = c_loader(oid, context).load

        def load(self, data: Any) -> datetime:
            return self._parse(data).replace(tzinfo=zone)

    return FastTzLoader


def install_fast_timestamptz(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: swap Django's Python ``timestamptz`` loader for the C-backed one."""
    if connection.vendor != "postgresql":
        return
    c_loader = c_timestamptz_loader()
    if c_loader is None:
        return
    from psycopg.postgres import types
    from psycopg.pq import Format

    adapters = connection.connection.adapters
    current = adapters.get_loader(types["timestamptz"].oid, Format.TEXT)
    if current is not None and hasattr(current, "timezone"):
        adapters.register_loader("timestamptz", fast_tz_loader(current.timezone, c_loader))


def connect() -> None:
    connection_created.connect(install_fast_timestamptz, dispatch_uid="velocity-fast-timestamptz")

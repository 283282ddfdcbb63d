import pytest
from django.db import connections


@pytest.fixture(autouse=True, scope="session")
def _close_database_connections_after_each_use() -> None:
    """Async tests use the database from worker threads; with CONN_MAX_AGE those connections
    outlive the tests and PostgreSQL refuses to drop the test database at the end."""
    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = 0

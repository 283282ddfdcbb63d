from collections.abc import Iterator

import pytest
from channels.layers import channel_layers
from django.db import connections


@pytest.fixture(autouse=True, scope="session")
def _close_database_connections_after_each_use() -> None:
    """Async tests use the database from worker threads; with CONN_MAX_AGE those connections
    outlive the tests and PostgreSQL refuses to drop the test database at the end."""
    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _a_fresh_channel_layer_per_test() -> Iterator[None]:
    """Each async test runs on its own event loop, and a channels_redis layer that received on an
    earlier loop keeps locks bound to it; production processes have one loop, tests get one layer each."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()

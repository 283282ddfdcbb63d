"""release_if_pooled: what a long wait does with its connection between checks."""

import pytest
from django.db import connection, transaction
from django.test import override_settings

from velocity.db_pool import release_if_pooled
from velocity.testing import require

pytestmark = pytest.mark.django_db(transaction=True)


def test_without_a_pool_the_connection_is_kept_for_the_next_check() -> None:
    connection.ensure_connection()
    with override_settings(DATABASE_POOL=False):
        release_if_pooled()
    assert connection.connection is not None


def test_with_a_pool_it_goes_back_between_checks_but_never_inside_a_transaction() -> None:
    require(connection.vendor == "postgresql", "the pool is PostgreSQL's (an in-memory SQLite is never closed)")
    connection.ensure_connection()
    with override_settings(DATABASE_POOL=True):
        with transaction.atomic():
            release_if_pooled()
            assert connection.connection is not None
        release_if_pooled()
    assert connection.connection is None

"""The audit trail moved from the machines app to this one without touching its rows: the table keeps its
name, and records written before the move are read after it (and again after migrating back)."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard.models import AuditRecord

MACHINES_BEFORE = ("machines", "0003_audit_actor_label")
BEFORE_THE_MOVE: list[tuple[str, str | None]] = [("dashboard", None), MACHINES_BEFORE]


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader: the graph as applied now


@pytest.mark.django_db(transaction=True)
def test_records_written_before_the_move_survive_it_both_ways() -> None:
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    content_type_id = ContentType.objects.get_for_model(AuditRecord).id
    try:
        old_state = migrate(BEFORE_THE_MOVE).loader.project_state(MACHINES_BEFORE).apps
        old_model = old_state.get_model("machines", "AuditRecord")
        old_model.objects.create(action="quota.update", target_type="t", target_id="1", actor_label="service_role")
        moved_type = ContentType.objects.filter(id=content_type_id).values_list("app_label", "model").get()
        assert moved_type == ("machines", "auditrecord")
    finally:
        migrate(leaves)
    ContentType.objects.clear_cache()
    assert list(AuditRecord.objects.values_list("action", "actor_label")) == [("quota.update", "service_role")]
    assert ContentType.objects.get_for_model(AuditRecord).id == content_type_id
    assert AuditRecord._meta.db_table in connection.introspection.table_names()

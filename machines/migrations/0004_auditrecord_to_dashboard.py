# The audit trail moved to the dashboard app (dashboard/migrations/0001_initial.py takes it over). Only the
# migration state changes: the table, its rows and its name (machines_auditrecord) stay as they are.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("machines", "0003_audit_actor_label"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditRecord")],
            database_operations=[],
        ),
    ]

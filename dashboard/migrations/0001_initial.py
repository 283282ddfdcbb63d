# AuditRecord, moved here from the machines app (machines/migrations/0004_auditrecord_to_dashboard.py). The
# table already exists as machines_auditrecord and keeps that name and its rows: this migration changes the
# state only, plus the content type, so permissions granted on the model and admin log entries follow it.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, from_label: str, to_label: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType")
    if content_types.objects.filter(app_label=to_label, model="auditrecord").exists():
        return  # already there (created by a post_migrate): keep it, nothing to carry over
    content_types.objects.filter(app_label=from_label, model="auditrecord").update(app_label=to_label)


def forward(apps, schema_editor) -> None:
    _move_content_type(apps, "machines", "dashboard")


def backward(apps, schema_editor) -> None:
    _move_content_type(apps, "dashboard", "machines")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("machines", "0004_auditrecord_to_dashboard"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditRecord",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "actor_label",
                            models.CharField(
                                blank=True,
                                help_text="Who acted when it was not an operator: e.g. the service role.",
                                max_length=100,
                            ),
                        ),
                        ("action", models.CharField(max_length=64)),
                        ("target_type", models.CharField(max_length=64)),
                        ("target_id", models.CharField(max_length=64)),
                        ("before", models.JSONField(blank=True, default=dict)),
                        ("after", models.JSONField(blank=True, default=dict)),
                        ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "machines_auditrecord",
                        "ordering": ["-at", "-id"],
                        "indexes": [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forward, backward, elidable=True),
    ]

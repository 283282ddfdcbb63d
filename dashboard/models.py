from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditRecord(models.Model):
    """Who changed what: operator kills and ends, quota, flag and project changes by operators or the service
    role. Written only by the receiver of ``velocity.audit.audit`` (``dashboard.services.audit_record_create``)."""

    id = models.BigAutoField(primary_key=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=100, blank=True, help_text="Who acted when it was not an operator: e.g. the service role."
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        # The table keeps the name it had in the machines app: the model moved, the rows did not.
        db_table = "machines_auditrecord"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"

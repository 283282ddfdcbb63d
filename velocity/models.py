"""Shared operational records that belong to no domain app: the task cluster's heartbeat.

The cluster runs in its own process (the ``worker`` role), often on its own machine; the web process
answers ``/health`` and the dashboard. Both read this table, so the signal works with either task broker
(Redis or the ORM) and whichever cache is configured.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The latest status one django-q2 cluster reported about itself (one row per cluster start)."""

    cluster_id = models.CharField(max_length=64, primary_key=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    workers = models.PositiveSmallIntegerField(default=0, help_text="Worker processes in the cluster's pool.")
    status = models.CharField(max_length=32, help_text="django-q2's own word: Starting, Idle, Working, Stopped...")
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return f"cluster {self.cluster_id} on {self.host} ({self.status} at {self.beat_at:%H:%M:%S})"

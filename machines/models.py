from __future__ import annotations

import hashlib
import secrets
import uuid

from django.db import models
from django.utils import timezone


class Provider(models.TextChoices):
    LOCAL = "local", "Local process"
    FLY = "fly", "Fly Machines"


class MachineState(models.TextChoices):
    """Fly's machine states; the local provider maps its processes onto them."""

    CREATED = "created", "Created"
    STARTING = "starting", "Starting"
    STARTED = "started", "Started"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    SUSPENDED = "suspended", "Suspended"
    DESTROYING = "destroying", "Destroying"
    DESTROYED = "destroyed", "Destroyed"
    FAILED = "failed", "Failed"


GONE_STATES = (MachineState.DESTROYED, MachineState.FAILED)


class EventSource(models.TextChoices):
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    OPERATOR = "operator", "Operator"
    PROVIDER = "provider", "Provider"
    AGENT = "agent", "Agent"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_machine_token() -> tuple[str, str]:
    """A fresh machine credential and the hash that is stored; the token itself is never stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


class Machine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_machine_id = models.CharField(max_length=64, blank=True, db_index=True)
    app = models.CharField(max_length=64, blank=True)
    region = models.CharField(max_length=16, blank=True)
    image = models.CharField(max_length=300, blank=True)
    cpu_kind = models.CharField(max_length=16, default="shared")
    cpus = models.PositiveSmallIntegerField(default=1)
    memory_mb = models.PositiveIntegerField(default=512)
    state = models.CharField(max_length=16, choices=MachineState.choices, default=MachineState.CREATED)
    address = models.CharField(max_length=200, blank=True, help_text="Where the agent answers.")
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    is_warm = models.BooleanField(default=False, help_text="Idle in the warm pool, without a project.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state"], name="machine_state_idx"),
            models.Index(fields=["is_warm", "state"], name="machine_warm_state_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_machine_id"],
                condition=~models.Q(provider_machine_id=""),
                name="machine_unique_provider_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_machine_id or self.id} ({self.state})"

    @property
    def is_gone(self) -> bool:
        return self.state in GONE_STATES


class MachineEvent(models.Model):
    """One state transition of a machine, with who caused it. Cost is summed over these intervals."""

    id = models.BigAutoField(primary_key=True)
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=16, choices=MachineState.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=MachineState.choices)
    source = models.CharField(max_length=16, choices=EventSource.choices)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["machine", "at"], name="machine_event_machine_at_idx")]

    def __str__(self) -> str:
        return f"{self.from_state or '-'} -> {self.to_state} ({self.source})"

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone


class Provider(models.TextChoices):
    LOCAL = "local", "Local process"
    FLY = "fly", "Fly Machines"

    @property
    def reached_directly(self) -> bool:
        """Its machines answer on an address of their own (a loopback port): no replay, no region."""
        return self is Provider.LOCAL

    @property
    def previews_by_replay(self) -> bool:
        """Its previews go through the orchestrator's preview host, which answers ``fly-replay``."""
        return self is Provider.FLY


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
    assigned_at = models.DateTimeField(
        null=True, blank=True, help_text="When it got its session (at creation, or when claimed from the pool)."
    )
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

    @property
    def latest_session(self) -> Any:
        """The newest session that ran here, or None: the one answer to "whose machine is this?".

        Reads the ``sessions`` relation the sessions app declares (prefetch it for lists); a machine runs
        one session in its life, a warm one none until it is claimed.
        """
        return max(self.sessions.all(), key=lambda session: session.created_at, default=None)


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


class ReconcileReport(models.Model):
    """One reconciliation run: what drifted between the provider and the database, and what it cost."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    seen = models.PositiveIntegerField(default=0, help_text="Machines tagged as ours at the provider.")
    orphans = models.PositiveIntegerField(default=0)
    ghosts = models.PositiveIntegerField(default=0)
    mismatches = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0, help_text="Machines stuck in destroying, destroyed again.")
    orphan_hourly_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    orphan_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    error = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"reconcile {self.at:%Y-%m-%d %H:%M} ({self.orphans} orphans, {self.ghosts} ghosts)"


class CostRollup(models.Model):
    """Machine cost of one day for one user (``user_id`` empty: the warm pool), refreshed by ``rollup_costs``."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    user_id = models.UUIDField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    started_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=0)
    idle_seconds = models.DecimalField(
        max_digits=14, decimal_places=3, default=0, help_text="Paid started time that served no live session."
    )
    idle_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "user_id"]
        constraints = [
            models.UniqueConstraint(
                "day",
                Coalesce("user_id", models.Value(uuid.UUID(int=0), output_field=models.UUIDField())),
                name="cost_rollup_one_per_day_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id or 'pool'}: {self.cost}"

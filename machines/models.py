from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from machines.reconcile import drift_sentence


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


class ProviderHealth(models.Model):
    """When the provider last answered and last failed, as seen by any process that called it.

    Written by ``machines.services.provider_health`` around every provider call (successes at most every
    few seconds per process), read by the dashboard: the web process rarely calls the provider itself.
    """

    provider = models.CharField(max_length=16, choices=Provider.choices, primary_key=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_ok_call = models.CharField(max_length=32, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_call = models.CharField(max_length=32, blank=True)
    last_failure = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "provider health"

    def __str__(self) -> str:
        return f"{self.provider}: ok {self.last_ok_at}, failed {self.last_failure_at}"

    @property
    def failing(self) -> bool:
        """The latest word from the provider was a failure."""
        return self.last_failure_at is not None and (self.last_ok_at is None or self.last_failure_at > self.last_ok_at)


class DriftKind(models.TextChoices):
    ORPHAN = "orphan", "Orphan"  # ours at the provider, unknown or ended here
    GHOST = "ghost", "Ghost"  # live here, gone at the provider
    MISMATCH = "mismatch", "Mismatch"  # both know it, in different states
    UNFINISHED = "unfinished", "Unfinished"  # left destroying/failed here, gone at the provider


class DriftAction(models.TextChoices):
    DESTROYED = "destroyed", "Destroyed"  # at the provider
    BURIED = "buried", "Buried"  # marked destroyed here
    ENDED = "ended", "Ended"  # its session ended
    UPDATED = "updated", "Updated"  # took the provider's state
    LEFT = "left", "Left"  # nothing done, ``why`` says why


class DriftFinding(models.Model):
    """One thing a reconciliation run found and what it did about it; kept a day for the dashboard."""

    id = models.BigAutoField(primary_key=True)
    report = models.ForeignKey(ReconcileReport, on_delete=models.CASCADE, related_name="findings")
    found_at = models.DateTimeField(default=timezone.now, db_index=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    kind = models.CharField(max_length=16, choices=DriftKind.choices)
    provider_machine_id = models.CharField(max_length=64, blank=True)
    machine = models.ForeignKey(Machine, null=True, blank=True, on_delete=models.SET_NULL, related_name="findings")
    # The sessions app sits above this one: its id, not a foreign key (the dashboard links it).
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=16, choices=DriftAction.choices)
    why = models.CharField(max_length=300, blank=True)
    hourly_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    cost_so_far = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    running_since = models.DateTimeField(null=True, blank=True, help_text="When the provider created the machine.")

    class Meta:
        ordering = ["-found_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.provider_machine_id or self.machine_id}"

    @property
    def running_for(self) -> Any:
        """How long the machine had run when it was found (None when the provider did not say)."""
        return self.found_at - self.running_since if self.running_since else None

    @property
    def sentence(self) -> str:
        """``Destroyed orphan fly-abc ($0.0081/h, running 4 min): unknown to the database``."""
        return drift_sentence(
            kind=self.kind,
            action=self.action,
            name=self.provider_machine_id or str(self.machine_id or "?"),
            why=self.why,
            hourly_cost=self.hourly_cost,
            running_for=self.running_for,
        )

    @property
    def is_warning(self) -> bool:
        """Money was at stake or nothing could be done: an operator should look."""
        return self.kind == DriftKind.ORPHAN or self.action == DriftAction.LEFT

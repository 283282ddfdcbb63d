from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone


class SessionStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"


LIVE_STATUSES = (SessionStatus.CREATING, SessionStatus.ACTIVE)


class EndReason(models.TextChoices):
    EXPIRED = "expired", "Expired"
    IDLE = "idle", "Idle"
    USER = "user", "Ended by the user"
    OPERATOR = "operator", "Ended by an operator"
    QUOTA = "quota", "Quota exceeded"
    FAILED = "failed", "Failed"
    ORPHANED = "orphaned", "Orphaned"
    AGENT_UNRESPONSIVE = "agent_unresponsive", "Agent unresponsive"
    BUDGET = "budget", "Monthly budget spent"


class SessionHealth(models.TextChoices):
    """What the agent watch last concluded about a live session's agent (``status`` stays as the seed has it)."""

    UNKNOWN = "unknown", "Unknown"
    OK = "ok", "OK"
    DEGRADED = "degraded", "Degraded"


class PreviewSession(models.Model):
    """One user's live preview of one project; the table the seed's SQL and RLS policies name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: ``preview_user_status_idx`` (user_id, status) serves lookups by user (one index
    # fewer to write when a sweep ends 100,000 rows).
    user_id = models.UUIDField(help_text="The Supabase auth user (the token's sub).")
    project_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.CREATING)
    preview_url = models.URLField(max_length=500, blank=True)
    machine = models.ForeignKey(
        "machines.Machine", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    framework = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    last_activity_source = models.CharField(max_length=32, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    end_detail = models.CharField(max_length=500, blank=True, help_text="Why it failed, for operators.")
    memory_mb = models.PositiveIntegerField(default=512)
    # The time-to-preview waterfall: each step's moment, and the agent's own boot steps.
    queued_at = models.DateTimeField(null=True, blank=True)
    machine_created_at = models.DateTimeField(null=True, blank=True)
    machine_started_at = models.DateTimeField(null=True, blank=True)
    agent_ready_at = models.DateTimeField(null=True, blank=True)
    boot_timings = models.JSONField(default=dict, blank=True)
    # Agent liveness (the agent watch): rare writes, each announced; the heartbeats themselves are kept in
    # AgentHeartbeat, off this table, so they do not become a postgres_changes message every few seconds.
    health = models.CharField(
        max_length=16, choices=SessionHealth.choices, default=SessionHealth.UNKNOWN, db_default=SessionHealth.UNKNOWN
    )
    health_detail = models.CharField(
        max_length=300, blank=True, db_default="", help_text="Why the health is what it is."
    )
    health_changed_at = models.DateTimeField(null=True, blank=True)
    agent_restarts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Machine restarts by the agent watch."
    )
    agent_restart_streak = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Restarts since the agent was last healthy; at AGENT_RESTART_LIMIT the session fails.",
    )
    agent_restarted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "preview_sessions"
        ordering = ["-created_at"]
        indexes = [
            # Live rows only: the sweeps' candidates. An ended row leaves them, so ending one writes no entry
            # into either (the expiry sweep's UPDATE of 100,000 rows, docs/benchmarks.md).
            models.Index(
                fields=["expires_at"], condition=Q(status__in=["creating", "active"]), name="preview_live_expires_idx"
            ),
            models.Index(
                fields=["last_activity_at"],
                condition=Q(status__in=["creating", "active"]),
                name="preview_live_activity_idx",
            ),
            models.Index(fields=["user_id", "status"], name="preview_user_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "project_id"],
                condition=Q(status__in=["creating", "active"]),
                name="preview_one_live_session_per_project",
                violation_error_message="This user already has a live session for this project.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["creating", "active"]) | Q(ended_at__isnull=False),
                name="preview_finished_sessions_have_ended_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_legacy(self) -> bool:
        """An Appetize.io preview handed out by the rollback flag: no machine behind it."""
        return self.framework == "legacy" and self.machine_id is None


class AgentHeartbeat(models.Model):
    """The newest report of a session's agent: when it was seen, whether it is joined on ``project:{id}``.

    Written on every heartbeat (every few seconds), so it lives beside the session row: a write to
    ``preview_sessions`` is a ``postgres_changes`` message to the user on a Supabase database.
    """

    session = models.OneToOneField(
        PreviewSession, primary_key=True, on_delete=models.CASCADE, related_name="agent_heartbeat"
    )
    seen_at = models.DateTimeField()
    joined = models.BooleanField(null=True, help_text="Joined on project:{id}; empty until the agent says.")
    status = models.JSONField(default=dict, blank=True, help_text="devServer, devServerState, fileCount, uptime.")

    class Meta:
        db_table = "preview_agent_heartbeats"

    def __str__(self) -> str:
        return f"agent of {self.session_id} seen {self.seen_at:%H:%M:%S}"


# The limits of a quota, as the audit trail records them.
QUOTA_FIELDS = (
    "user_id",
    "max_concurrent_sessions",
    "max_session_seconds",
    "monthly_machine_seconds",
    "monthly_budget_usd",
    "max_memory_mb",
)


class Quota(models.Model):
    """Limits for one user, or the default for everyone when ``user_id`` is null."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.UUIDField(null=True, blank=True, help_text="Empty for the default quota.")
    max_concurrent_sessions = models.PositiveIntegerField(default=2)
    max_session_seconds = models.PositiveIntegerField(default=7200)
    monthly_machine_seconds = models.PositiveBigIntegerField(default=360_000)
    monthly_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("5.00"))
    max_memory_mb = models.PositiveIntegerField(default=1024)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "preview_quotas"
        ordering = ["user_id"]
        constraints = [
            # NULLs are distinct in a unique index: coalescing makes the default row (null user) unique too.
            models.UniqueConstraint(
                Coalesce("user_id", Value(uuid.UUID(int=0), output_field=models.UUIDField())),
                name="preview_quota_one_per_user",
                violation_error_message="There is already a quota for this user (or a default quota).",
            ),
        ]

    def __str__(self) -> str:
        return f"quota for {self.user_id}" if self.user_id else "default quota"

    @property
    def is_default(self) -> bool:
        return self.user_id is None

    def audit_values(self) -> dict[str, str | None]:
        """The limits as text, for the audit trail's before and after (decimals and UUIDs as JSON cannot)."""
        return {name: None if value is None else str(value) for name in QUOTA_FIELDS for value in [getattr(self, name)]}


class BudgetNotice(models.Model):
    """That a user's month-to-date spend crossed ``level`` percent of their monthly budget: written once per
    user, month and level by the budget check (``sessions.services.budgets``), so each warning goes out once."""

    id = models.BigAutoField(primary_key=True)
    user_id = models.UUIDField()
    month = models.DateField(help_text="The first day of the month the spend belongs to.")
    level = models.PositiveSmallIntegerField(help_text="80, 95 or 100 (percent of the budget).")
    spend_usd = models.DecimalField(max_digits=14, decimal_places=6)
    cap_usd = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "preview_budget_notices"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user_id", "month", "level"], name="preview_budget_notice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} at {self.level}% in {self.month:%Y-%m}"


class FlagScope(models.TextChoices):
    EVERYONE = "everyone", "Everyone"
    USER = "user", "One user"
    PROJECT = "project", "One project"


class PreviewTarget(models.TextChoices):
    NEW = "new", "New previews (machines)"
    LEGACY = "legacy", "Legacy previews (Appetize.io)"


LEGACY_FRAMEWORK = "legacy"


class PreviewFlag(models.Model):
    """The rollback switch (seed §8.4): which preview system serves everyone, one user or one project.

    The most specific flag wins (project, then user, then everyone); with no flag, the new previews serve.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scope = models.CharField(max_length=16, choices=FlagScope.choices)
    user_id = models.UUIDField(null=True, blank=True, help_text="For scope 'user' only.")
    project_id = models.CharField(max_length=200, blank=True, help_text="For scope 'project' only.")
    target = models.CharField(max_length=16, choices=PreviewTarget.choices, default=PreviewTarget.NEW)
    legacy_url = models.URLField(
        max_length=500, blank=True, help_text="The Appetize app to show; empty for APPETIZE_APP_URL."
    )
    note = models.CharField(max_length=200, blank=True, help_text="Why, for the next operator.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "preview_flags"
        ordering = ["scope", "user_id", "project_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="everyone", user_id__isnull=True, project_id="")
                | Q(scope="user", user_id__isnull=False, project_id="")
                | (Q(scope="project", user_id__isnull=True) & ~Q(project_id="")),
                name="preview_flag_scope_matches_subject",
                violation_error_message="'everyone' names nobody, 'user' a user only, 'project' a project only.",
            ),
            models.UniqueConstraint(
                fields=["scope"], condition=Q(scope="everyone"), name="preview_flag_one_for_everyone"
            ),
            models.UniqueConstraint(fields=["user_id"], condition=Q(scope="user"), name="preview_flag_one_per_user"),
            models.UniqueConstraint(
                fields=["project_id"], condition=Q(scope="project"), name="preview_flag_one_per_project"
            ),
        ]

    def __str__(self) -> str:
        subject = {"user": str(self.user_id), "project": self.project_id}.get(self.scope, "everyone")
        return f"{subject} → {self.target}"

    def audit_values(self) -> dict[str, str | None]:
        """What the flag says, for the audit trail's before and after."""
        fields = ("scope", "user_id", "project_id", "target", "legacy_url", "note")
        return {name: None if value is None else str(value) for name in fields for value in [getattr(self, name)]}


class ProjectRole(models.TextChoices):
    EDITOR = "editor", "Editor: previews, reads and writes its files"
    VIEWER = "viewer", "Viewer: joins its channel and reads"


class Project(models.Model):
    """The embedded registry's record of who may use a project id (``PROJECT_ACCESS_BACKEND=registry``).

    Created, owned by the caller, by the first session for an id nobody holds; afterwards only its owner and
    members may create sessions for it, join ``project:{id}`` or see its traffic.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project_id = models.CharField(max_length=200, unique=True)
    owner_id = models.UUIDField(db_index=True, help_text="The Supabase user who owns it.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "preview_projects"
        ordering = ["project_id"]

    def __str__(self) -> str:
        return self.project_id


class ProjectMember(models.Model):
    """A user other than the owner who may use a project, with a role."""

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user_id = models.UUIDField(db_index=True)
    role = models.CharField(max_length=16, choices=ProjectRole.choices, default=ProjectRole.EDITOR)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "preview_project_members"
        ordering = ["project", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user_id"], name="preview_project_one_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.project_id} ({self.role})"


class TraceKind(models.TextChoices):
    LOG = "log", "Agent log line"
    SYNC = "sync", "File-sync event"


class SessionTrace(models.Model):
    """One agent log line or file-sync event seen on the session's project channel, kept so a reload of the
    operator's session page still shows them (and hung agents stay visible: updates with no ack).

    Only the newest few hundred of each kind are kept per session (``AGENT_LOG_KEEP``, ``SYNC_EVENTS_KEEP``);
    they go with the session when it is deleted.
    """

    session = models.ForeignKey(PreviewSession, on_delete=models.CASCADE, related_name="traces")
    kind = models.CharField(max_length=8, choices=TraceKind.choices)
    event = models.CharField(max_length=32)
    data = models.JSONField(default=dict, blank=True, help_text="The event's summary (path, version, line...).")
    at = models.DateTimeField(default=timezone.now, help_text="When the orchestrator saw the broadcast.")

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["session", "kind", "at"], name="preview_trace_session_kind_at")]

    def __str__(self) -> str:
        return f"{self.event} at {self.at:%H:%M:%S}"


class UserBlock(models.Model):
    """An operator's stop on one user's new previews (a cost spike, abuse): while it exists, session creates
    for the user are refused with ``user.blocked``; their live sessions are not touched by the block itself.
    Written only by ``sessions.services.user_block`` / ``user_unblock`` (audited)."""

    id = models.BigAutoField(primary_key=True)
    user_id = models.UUIDField(unique=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why, for the next operator.")
    actor_label = models.CharField(max_length=150, blank=True, help_text="Who blocked the user.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "preview_user_blocks"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"block on {self.user_id}"

    def audit_values(self) -> dict[str, str]:
        return {"user_id": str(self.user_id), "reason": self.reason, "blocked_by": self.actor_label}


# --- policy dry-run: activity history and the live session policy (sessions.services.activity, .policy) -------


class SessionActivity(models.Model):
    """What happened in one session during one minute: edits (``file:update`` / ``file:delete`` broadcasts),
    their bytes, and other activity (heartbeats, the agent's activity reports).

    One row per session and minute, written in bulk from a buffer (``sessions.services.activity``) and pruned
    past ``SESSION_ACTIVITY_RETENTION_DAYS``: the history the policy dry-run replays.
    """

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(PreviewSession, on_delete=models.CASCADE, related_name="activity")
    minute = models.DateTimeField(help_text="The start of the minute (UTC, seconds zero).")
    edits = models.PositiveIntegerField(default=0)
    edit_bytes = models.PositiveBigIntegerField(default=0)
    touches = models.PositiveIntegerField(default=0, help_text="Heartbeats and agent activity reports.")

    class Meta:
        db_table = "preview_session_activity"
        ordering = ["session", "minute"]
        constraints = [
            models.UniqueConstraint(fields=["session", "minute"], name="preview_activity_one_row_per_minute"),
        ]
        indexes = [models.Index(fields=["minute"], name="preview_activity_minute_idx")]

    def __str__(self) -> str:
        return f"{self.session_id} at {self.minute:%Y-%m-%d %H:%M}: {self.edits} edit(s)"


class SessionPolicy(models.Model):
    """The live idle timeout (one row, ``id=1``): empty means ``PREVIEW_INACTIVITY_TIMEOUT``. The TTL and the
    concurrency limit live in the default ``Quota``. Written only by ``policy_apply`` (audited)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    idle_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: PREVIEW_INACTIVITY_TIMEOUT applies."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "preview_session_policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="preview_session_policy_singleton")]

    def __str__(self) -> str:
        return "session policy"

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from sessions.models import EndReason, PreviewSession, Project, ProjectMember, ProjectRole, Quota

# Ids made only of dots are refused: "." and ".." name directories wherever an id becomes a path segment.
PROJECT_ID_PATTERN = r"^(?!\.+$)[A-Za-z0-9\-_.:]{1,200}$"


class StrictRegexField(serializers.RegexField):
    """A regex field that refuses numbers and booleans instead of quietly turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class SessionCreateSerializer(serializers.Serializer[Any]):
    project_id = StrictRegexField(
        PROJECT_ID_PATTERN,
        max_length=200,
        error_messages={"invalid": "1 to 200 letters, digits, '-', '_', '.' or ':', not only dots."},
    )
    memory_mb = serializers.ChoiceField(choices=[256, 512, 1024, 2048, 4096], required=False)

    def validated_memory_mb(self) -> int:
        return int(self.validated_data.get("memory_mb") or settings.PREVIEW_MACHINE_MEMORY_MB)


class SessionSerializer(serializers.ModelSerializer[PreviewSession]):
    machine_id = serializers.UUIDField(read_only=True, allow_null=True)
    # Read-only model fields lose ``allow_blank``; the schema must say that a live session's is "".
    end_reason = serializers.ChoiceField(choices=EndReason.choices, allow_blank=True, read_only=True)
    preview_url = serializers.CharField(read_only=True, help_text="the preview's URL once active; empty before")

    class Meta:
        model = PreviewSession
        fields = [
            "id",
            "user_id",
            "project_id",
            "status",
            "preview_url",
            "machine_id",
            "framework",
            "memory_mb",
            "created_at",
            "updated_at",
            "started_at",
            "ended_at",
            "expires_at",
            "last_activity_at",
            "last_activity_source",
            "end_reason",
            "end_detail",
            "queued_at",
            "machine_created_at",
            "machine_started_at",
            "agent_ready_at",
            "boot_timings",
            "health",
            "health_detail",
        ]
        read_only_fields = fields


class HeartbeatSerializer(SessionSerializer):
    """The session after a heartbeat, and whether this one was written (activity is recorded at most once
    per ``ACTIVITY_WRITE_INTERVAL``, 5 seconds, per session; a throttled beat still counts as alive)."""

    recorded = serializers.BooleanField(read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "recorded"]


class QuotaLimitsSerializer(serializers.ModelSerializer[Quota]):
    class Meta:
        model = Quota
        fields = [
            "user_id",
            "max_concurrent_sessions",
            "max_session_seconds",
            "monthly_machine_seconds",
            "monthly_budget_usd",
            "max_memory_mb",
            "updated_at",
        ]
        read_only_fields = ["user_id", "updated_at"]


class QuotaReasonSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()
    used = serializers.JSONField()
    limit = serializers.JSONField()


class QuotaUsageSerializer(serializers.Serializer[Any]):
    live_sessions = serializers.IntegerField()
    machine_seconds = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=4)
    period_start = serializers.DateTimeField()


class QuotaBudgetSerializer(serializers.Serializer[Any]):
    """The month against ``monthly_budget_usd``, exact to now (``sessions.budgets``): what the budget check
    acts on (warnings at 80 and 95 percent, live sessions ended at 100)."""

    cap_usd = serializers.DecimalField(max_digits=10, decimal_places=2, help_text="monthly_budget_usd")
    spend_usd = serializers.DecimalField(
        max_digits=14, decimal_places=4, help_text="month-to-date machine cost, the running machines' cost included"
    )
    percent = serializers.DecimalField(
        max_digits=10, decimal_places=1, allow_null=True, help_text="spend as a percent of the cap; null: cap 0"
    )
    level = serializers.IntegerField(allow_null=True, help_text="80, 95 or 100: the highest level reached; null below")
    burn_usd_per_hour = serializers.DecimalField(
        max_digits=12, decimal_places=4, help_text="what the live sessions' machines cost per hour now"
    )
    projected_month_usd = serializers.DecimalField(
        max_digits=14, decimal_places=4, help_text="the spend at the month's end if the current burn goes on"
    )
    seconds_left = serializers.IntegerField(
        allow_null=True, help_text="seconds until the cap at the current burn (0: reached); null when nothing runs"
    )
    period_end = serializers.DateTimeField(help_text="the first moment of the next month (UTC)")


class QuotaStatusSerializer(serializers.Serializer[Any]):
    limits = QuotaLimitsSerializer()
    usage = QuotaUsageSerializer()
    budget = QuotaBudgetSerializer()
    can_create = serializers.BooleanField()
    reasons = QuotaReasonSerializer(many=True)


EXTEND_MAX_MINUTES = 24 * 60  # one request's most; the quota's session length is the real cap


class SessionExtendSerializer(serializers.Serializer[Any]):
    """``{"minutes": N}``: push ``expires_at`` N minutes past its current value (or past now, when that is later)."""

    minutes = serializers.IntegerField(min_value=1, max_value=EXTEND_MAX_MINUTES)


class AgentEventSerializer(serializers.Serializer[Any]):
    """One report of a machine's agent. ``heartbeat`` (every ``AGENT_HEARTBEAT_SECONDS``) and ``status`` carry the
    agent's state under the names of its ``/health``; the session is always the machine's own, never the body's."""

    type = serializers.ChoiceField(choices=["ready", "status", "heartbeat", "activity", "exit"])
    boot_steps = serializers.DictField(required=False)
    framework = serializers.CharField(required=False, allow_blank=True, max_length=32)
    dev_server_kind = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)
    source = serializers.CharField(required=False, max_length=32)  # type: ignore[assignment]
    reason = serializers.CharField(required=False, max_length=64)
    # The names of the agent's /health, as it sends them.
    supabaseConnected = serializers.BooleanField(required=False, help_text="joined on project:{id}")
    devServer = serializers.BooleanField(required=False)
    devServerState = serializers.CharField(required=False, allow_blank=True, max_length=32)
    fileCount = serializers.IntegerField(required=False, min_value=0)
    uptime = serializers.FloatField(required=False, min_value=0)
    # How busy the machine is (heartbeats only): CPU since the previous beat and memory in use, as fractions.
    cpuRatio = serializers.FloatField(required=False, min_value=0, max_value=1)
    memoryRatio = serializers.FloatField(required=False, min_value=0, max_value=1)

    def event(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        data.setdefault("framework", data.get("dev_server_kind") or "")
        return data


class AgentAssignmentSerializer(serializers.Serializer[dict[str, Any]]):
    project_id = serializers.CharField()
    session_id = serializers.UUIDField()
    realtime_key = serializers.CharField()


class ProjectMemberSerializer(serializers.ModelSerializer[ProjectMember]):
    class Meta:
        model = ProjectMember
        fields = ["user_id", "role", "created_at"]
        read_only_fields = ["created_at"]


class ProjectSerializer(serializers.ModelSerializer[Project]):
    members = ProjectMemberSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = ["project_id", "owner_id", "members", "created_at", "updated_at"]
        read_only_fields = fields


class ProjectOwnerSerializer(serializers.Serializer[Any]):
    owner_id = serializers.UUIDField()


class ProjectMemberWriteSerializer(serializers.Serializer[Any]):
    user_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=ProjectRole.choices, default=ProjectRole.EDITOR)


class ErrorDetailsSerializer(serializers.Serializer[Any]):
    """What ``details`` may hold; which keys appear depends on the code (docs/api.md, *Errors*)."""

    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(), required=False, help_text="request.invalid: each field and its problems"
    )
    reasons = QuotaReasonSerializer(many=True, required=False, help_text="quota.*: every reason the create fails")
    retry_after = serializers.IntegerField(required=False, help_text="rate_limited: seconds to wait")
    limit_bytes = serializers.IntegerField(required=False, help_text="request.too_large: the largest body")


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="stable, dotted: `quota.concurrent_sessions`, `auth.expired`...")
    message = serializers.CharField(help_text="for people; may change")
    details = ErrorDetailsSerializer()


class ErrorSerializer(serializers.Serializer[Any]):
    """Every failure of the API: ``{"error": {"code", "message", "details"}}`` (``sessions.errors.error_body``)."""

    error = ErrorBodySerializer()


class AgentEventOutcomeSerializer(serializers.Serializer[Any]):
    outcome = serializers.ChoiceField(
        choices=["activated", "recorded", "throttled", "ended", "ignored", "noted", "no session"]
    )


# --- the policy dry-run (``/policy/``) ---------------------------------------------------------------------


class PolicySerializer(serializers.Serializer[Any]):
    """A candidate policy: each rule in minutes or a count; a rule left out (or null) stays as it is."""

    idle_timeout_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
    ttl_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
    max_concurrent = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="sessions at once per user"
    )


class DryRunRequestSerializer(PolicySerializer):
    days = serializers.IntegerField(
        required=False, default=30, min_value=1, max_value=365, help_text="how far back to replay (default 30)"
    )


class LivePolicySerializer(serializers.Serializer[Any]):
    idle_timeout_minutes = serializers.IntegerField()
    ttl_minutes = serializers.IntegerField()
    max_concurrent = serializers.IntegerField()


class PolicyApplyResultSerializer(serializers.Serializer[Any]):
    before = LivePolicySerializer()
    after = LivePolicySerializer()


class DryRunStopSerializer(serializers.Serializer[Any]):
    session_id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    rule = serializers.ChoiceField(choices=["idle", "ttl", "concurrency"])
    at = serializers.DateTimeField(help_text="when the rule would have stopped it (its start: refused)")
    ended_at = serializers.DateTimeField(help_text="when it really ended (now, while it runs)")
    saved_seconds = serializers.IntegerField()
    saved_usd = serializers.DecimalField(max_digits=14, decimal_places=4)
    edited_after = serializers.BooleanField(help_text="an edit arrived after the stop: the cost of being wrong")


class DryRunDaySerializer(serializers.Serializer[Any]):
    day = serializers.DateField()
    dollars_saved = serializers.DecimalField(max_digits=14, decimal_places=4)
    sessions = serializers.IntegerField()


class DryRunRulesSerializer(serializers.Serializer[Any]):
    idle = serializers.IntegerField()
    ttl = serializers.IntegerField()
    concurrency = serializers.IntegerField()


class DryRunResultSerializer(serializers.Serializer[Any]):
    policy = PolicySerializer()
    since = serializers.DateTimeField()
    now = serializers.DateTimeField()
    sessions_considered = serializers.IntegerField()
    sessions_ended_earlier = serializers.IntegerField()
    machine_hours_saved = serializers.DecimalField(max_digits=14, decimal_places=2)
    dollars_saved = serializers.DecimalField(max_digits=14, decimal_places=4)
    users_affected = serializers.IntegerField()
    sessions_edited_after_stop = serializers.IntegerField()
    by_rule = DryRunRulesSerializer()
    per_day = DryRunDaySerializer(many=True)
    sessions = DryRunStopSerializer(
        many=True, source="largest_stops", help_text="the 100 stops that save the most, largest first"
    )

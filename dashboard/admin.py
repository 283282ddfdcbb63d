"""The admin as an inspection and action tool for every app's models: writes go through services, each
audited (kill, end, quota and flag edits); records that only services write are read-only.

The admin registers models of the layers below it, so it lives in the top layer with the other operator
tools; the admin's URLs still follow each model's app (``/admin/machines/machine/``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from dashboard.models import AuditRecord
from dashboard.services import (
    flag_delete_by_operator,
    flag_save_by_operator,
    quota_delete_by_operator,
    quota_save_by_operator,
    session_delete_by_operator,
    session_end_by_operator,
)
from dashboard.templatetags.dashboard import event_sentence
from machines.models import CostRollup, DriftFinding, Machine, MachineEvent, ProviderHealth, ReconcileReport
from machines.selectors import machine_cost_so_far, machine_uptime
from machines.services import machine_kill
from sessions import services as session_services
from sessions.models import (
    BudgetNotice,
    PreviewFlag,
    PreviewSession,
    PreviewTarget,
    Quota,
    SessionActivity,
    SessionPolicy,
)
from velocity.models import WorkerHeartbeat

# The admin's "View site" link: the operators' pages (the site's root is not a page).
admin.site.site_url = "/dashboard/"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by services: inspectable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LifecycleAdmin(admin.ModelAdmin):
    """Rows with a lifecycle (sessions, machines): changed only by actions through services, never by their form
    nor a bulk delete, and deleted only once their life is over (a live one would vanish under what still runs).

    The form is view-only: a status saved by hand "ends" a session with its machine left running and nothing
    audited, and the other fields are just as loaded (a session's machine or user, a machine's provider id).
    The list keeps the change permission, which its actions (end, kill) require."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or self.is_over(obj)) and super().has_delete_permission(request, obj)

    def is_over(self, obj: Any) -> bool:
        raise NotImplementedError


# --- machines ----------------------------------------------------------------------------------------


class EventInWords:
    @admin.display(description="what happened")
    def in_words(self, event: MachineEvent) -> str:
        """A machine event's detail as the dashboard reads it ("claimed by session 1a2b3c4d"), not a dict."""
        return event_sentence(event.detail)


class MachineEventInline(EventInWords, admin.TabularInline):
    model = MachineEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_state", "to_state", "source", "in_words")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Kill selected machines", permissions=["change"])
def kill_machines(modeladmin: MachineAdmin, request: HttpRequest, queryset: QuerySet[Machine]) -> HttpResponse | None:
    """Ask first (like Django's delete action); on "Yes", kill each through ``machine_kill``."""
    if request.POST.get("post") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Kill machines?",
            "opts": modeladmin.model._meta,
            "machines": list(queryset.prefetch_related("sessions")),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/machines/machine/kill_confirmation.html", context)
    killed = sum(
        machine_kill(machine_id=machine_id, actor=request.user, now=timezone.now())
        for machine_id in queryset.values_list("id", flat=True)
    )
    modeladmin.message_user(request, f"Killed {killed} machine(s); their sessions ended (operator).", messages.SUCCESS)
    return None


@admin.register(Machine)
class MachineAdmin(LifecycleAdmin):
    list_display = (
        "id",
        "provider",
        "state",
        "size",
        "region",
        "uptime",
        "cost_so_far",
        "session",
        "user",
        "is_warm",
        "created_at",
    )
    list_filter = ("provider", "state", "region", "is_warm")
    search_fields = ("=id", "provider_machine_id", "address", "=sessions__id", "=sessions__user_id")
    readonly_fields = (
        "id",
        "token_hash",
        "created_at",
        "updated_at",
        "started_at",
        "stopped_at",
        "destroyed_at",
        "assigned_at",
    )
    inlines = (MachineEventInline,)
    actions = (kill_machines,)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # even gone, a machine's row and its events are the cost history and the audit's target

    def get_queryset(self, request: HttpRequest) -> QuerySet[Machine]:
        # Two extra queries for the whole page, whatever its length: events (for cost) and sessions.
        return super().get_queryset(request).prefetch_related("events", "sessions")

    @admin.display(description="size")
    def size(self, machine: Machine) -> str:
        return f"{machine.cpu_kind}-cpu-{machine.cpus}x {machine.memory_mb} MB"

    @admin.display(description="uptime")
    def uptime(self, machine: Machine) -> str:
        up = machine_uptime(machine, timezone.now())
        return "-" if up is None else str(timedelta(seconds=int(up.total_seconds())))

    @admin.display(description="cost so far ($)")
    def cost_so_far(self, machine: Machine) -> Decimal:
        return machine_cost_so_far(machine, timezone.now()).quantize(Decimal("0.0001"))

    @admin.display(description="session")
    def session(self, machine: Machine) -> str:
        session = _latest_session(machine)
        return f"{session.id} ({session.status})" if session else "-"

    @admin.display(description="user")
    def user(self, machine: Machine) -> str:
        session = _latest_session(machine)
        return str(session.user_id) if session else "-"


def _latest_session(machine: Machine) -> PreviewSession | None:
    sessions = sorted(machine.sessions.all(), key=lambda s: s.created_at, reverse=True)  # prefetched
    return sessions[0] if sessions else None


@admin.register(MachineEvent)
class MachineEventAdmin(EventInWords, ReadOnlyAdmin):
    list_display = ("at", "machine", "from_state", "to_state", "source", "in_words")
    list_filter = ("source", "to_state")
    search_fields = ("=machine__id", "machine__provider_machine_id")
    list_select_related = ("machine",)
    readonly_fields = ("id", "machine", "from_state", "to_state", "source", "in_words", "detail", "at")


@admin.register(ReconcileReport)
class ReconcileReportAdmin(ReadOnlyAdmin):
    list_display = ("at", "provider", "seen", "orphans", "ghosts", "mismatches", "retried", "orphan_cost", "error")
    list_filter = ("provider",)
    readonly_fields = (
        "id",
        "at",
        "provider",
        "seen",
        "orphans",
        "ghosts",
        "mismatches",
        "retried",
        "orphan_hourly_cost",
        "orphan_cost",
        "error",
        "detail",
    )
    date_hierarchy = "at"


@admin.register(CostRollup)
class CostRollupAdmin(ReadOnlyAdmin):
    list_display = ("day", "user_id", "cost", "started_seconds", "idle_seconds", "idle_cost", "updated_at")
    search_fields = ("=user_id",)
    readonly_fields = ("id", "day", "user_id", "cost", "started_seconds", "idle_seconds", "idle_cost", "updated_at")
    date_hierarchy = "day"


# --- sessions ----------------------------------------------------------------------------------------


@admin.action(description="End selected sessions", permissions=["change"])
def end_sessions(modeladmin: PreviewSessionAdmin, request: HttpRequest, queryset: QuerySet[PreviewSession]) -> None:
    """End each live one like the dashboard's End button: reason ``operator``, machine released, audited."""
    ended = sum(
        session_end_by_operator(session=session, operator=request.user, now=timezone.now())
        for session in queryset.select_related("machine")
    )
    modeladmin.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)


@admin.register(PreviewSession)
class PreviewSessionAdmin(LifecycleAdmin):
    list_display = ("id", "user_id", "project_id", "status", "machine", "created_at", "expires_at", "end_reason")
    list_filter = ("status", "end_reason", "framework")
    search_fields = ("=id", "=user_id", "project_id")
    list_select_related = ("machine",)
    readonly_fields = (
        "id",
        "status",
        "end_reason",
        "end_detail",
        "created_at",
        "updated_at",
        "started_at",
        "ended_at",
    )
    date_hierarchy = "created_at"
    actions = (end_sessions,)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # sessions are created through the API: project access, quota, provisioning

    def is_over(self, obj: PreviewSession) -> bool:
        return not obj.is_live  # end it first (the action)

    def delete_model(self, request: HttpRequest, obj: PreviewSession) -> None:
        session_delete_by_operator(session=obj, operator=request.user)


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "max_concurrent_sessions",
        "max_session_seconds",
        "monthly_machine_seconds",
        "monthly_budget_usd",
        "max_memory_mb",
        "updated_at",
    )
    search_fields = ("=user_id",)
    readonly_fields = ("id", "created_at", "updated_at")

    # Every change is audited (who, when, the values before and after) through the service.
    def save_model(self, request: HttpRequest, obj: Quota, form: Any, change: bool) -> None:
        quota_save_by_operator(quota=obj, operator=request.user)

    def delete_model(self, request: HttpRequest, obj: Quota) -> None:
        quota_delete_by_operator(quota=obj, operator=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Quota]) -> None:
        for quota in queryset:
            quota_delete_by_operator(quota=quota, operator=request.user)


@admin.register(SessionActivity)
class SessionActivityAdmin(ReadOnlyAdmin):
    """Each session's activity minutes, the policy dry-run's history (written in bulk, pruned daily)."""

    list_display = ("minute", "session", "edits", "edit_bytes", "touches")
    search_fields = ("=session__id",)
    list_select_related = ("session",)
    readonly_fields = ("session", "minute", "edits", "edit_bytes", "touches")
    date_hierarchy = "minute"


@admin.register(SessionPolicy)
class SessionPolicyAdmin(ReadOnlyAdmin):
    """The applied idle timeout: changed only by applying a policy (the dashboard's Policy page), audited."""

    list_display = ("__str__", "idle_timeout_seconds", "updated_at")
    readonly_fields = ("idle_timeout_seconds", "updated_at")


@admin.register(BudgetNotice)
class BudgetNoticeAdmin(ReadOnlyAdmin):
    """The budget check's warnings, one per user, month and level (80, 95, 100)."""

    list_display = ("created_at", "user_id", "month", "level", "spend_usd", "cap_usd")
    list_filter = ("level", "month")
    search_fields = ("=user_id",)
    readonly_fields = ("id", "user_id", "month", "level", "spend_usd", "cap_usd", "created_at")
    date_hierarchy = "created_at"


@admin.register(PreviewFlag)
class PreviewFlagAdmin(admin.ModelAdmin):
    """The rollback switch: flip ``target`` in the list, or select rows and use an action (all audited)."""

    list_display = ("__str__", "scope", "user_id", "project_id", "target", "legacy_url", "note", "updated_at")
    list_editable = ("target",)
    list_filter = ("scope", "target")
    search_fields = ("=user_id", "project_id", "note")
    readonly_fields = ("id", "created_at", "updated_at")
    actions = ("route_to_legacy", "route_to_new")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Route to the legacy previews (Appetize.io)")
    def route_to_legacy(self, request: HttpRequest, queryset: QuerySet[PreviewFlag]) -> None:
        self._route(request, queryset, PreviewTarget.LEGACY)

    @admin.action(description="Route to the new previews (machines)")
    def route_to_new(self, request: HttpRequest, queryset: QuerySet[PreviewFlag]) -> None:
        self._route(request, queryset, PreviewTarget.NEW)

    def _route(self, request: HttpRequest, queryset: QuerySet[PreviewFlag], target: str) -> None:
        ids = list(queryset.values_list("id", flat=True))
        changed = session_services.preview_flags_route(
            flag_ids=ids, target=target, actor=request.user, now=timezone.now()
        )
        self.message_user(request, f"{changed} flag(s) now route to {target}.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: PreviewFlag, form: Any, change: bool) -> None:
        flag_save_by_operator(flag=obj, operator=request.user)

    def delete_model(self, request: HttpRequest, obj: PreviewFlag) -> None:
        flag_delete_by_operator(flag=obj, operator=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PreviewFlag]) -> None:
        for flag in queryset:
            flag_delete_by_operator(flag=flag, operator=request.user)


# --- the audit trail ---------------------------------------------------------------------------------


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "target_type", "target_id")
    list_filter = ("action", "target_type")
    search_fields = ("=target_id", "actor__username")
    list_select_related = ("actor",)
    readonly_fields = ("id", "at", "actor", "actor_label", "action", "target_type", "target_id", "before", "after")
    date_hierarchy = "at"


# --- ops health --------------------------------------------------------------------------------------


@admin.register(DriftFinding)
class DriftFindingAdmin(ReadOnlyAdmin):
    list_display = ("found_at", "kind", "action", "provider_machine_id", "session_id", "hourly_cost", "why")
    list_filter = ("kind", "action", "provider")
    search_fields = ("provider_machine_id", "=session_id", "=machine__id")
    list_select_related = ("machine",)
    readonly_fields = (
        "id",
        "report",
        "found_at",
        "provider",
        "kind",
        "action",
        "why",
        "provider_machine_id",
        "machine",
        "session_id",
        "hourly_cost",
        "cost_so_far",
        "running_since",
    )
    date_hierarchy = "found_at"


@admin.register(ProviderHealth)
class ProviderHealthAdmin(ReadOnlyAdmin):
    list_display = ("provider", "last_ok_at", "last_ok_call", "last_failure_at", "last_failure_call", "last_failure")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("cluster_id", "host", "pid", "workers", "status", "started_at", "beat_at")

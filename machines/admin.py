from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from machines.models import AuditRecord, CostRollup, Machine, MachineEvent, ReconcileReport
from machines.selectors import machine_cost_so_far, machine_uptime
from machines.services import machine_kill


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by services: inspectable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MachineEventInline(admin.TabularInline):
    model = MachineEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_state", "to_state", "source", "detail")
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
class MachineAdmin(admin.ModelAdmin):
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


def _latest_session(machine: Machine) -> Any:
    sessions = sorted(machine.sessions.all(), key=lambda s: s.created_at, reverse=True)  # prefetched
    return sessions[0] if sessions else None


@admin.register(MachineEvent)
class MachineEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "machine", "from_state", "to_state", "source")
    list_filter = ("source", "to_state")
    search_fields = ("=machine__id", "machine__provider_machine_id")
    list_select_related = ("machine",)
    readonly_fields = ("id", "machine", "from_state", "to_state", "source", "detail", "at")


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "target_type", "target_id")
    list_filter = ("action", "target_type")
    search_fields = ("=target_id", "actor__username")
    list_select_related = ("actor",)
    readonly_fields = ("id", "at", "actor", "action", "target_type", "target_id", "before", "after")
    date_hierarchy = "at"


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

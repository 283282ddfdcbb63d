from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard.services import quota_delete_by_operator, quota_save_by_operator
from sessions import services
from sessions.models import PreviewFlag, PreviewSession, PreviewTarget, Quota


@admin.register(PreviewSession)
class PreviewSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user_id", "project_id", "status", "machine", "created_at", "expires_at", "end_reason")
    list_filter = ("status", "end_reason", "framework")
    search_fields = ("=id", "=user_id", "project_id")
    list_select_related = ("machine",)
    readonly_fields = ("id", "created_at", "updated_at", "started_at", "ended_at")
    date_hierarchy = "created_at"


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


@admin.register(PreviewFlag)
class PreviewFlagAdmin(admin.ModelAdmin):
    """The rollback switch: flip ``target`` in the list, or select rows and use an action."""

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
        changed = services.preview_flags_route(flag_ids=ids, target=target, now=timezone.now())
        self.message_user(request, f"{changed} flag(s) now route to {target}.", messages.SUCCESS)

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions.dashboard.services import quota_delete_by_operator, quota_save_by_operator
from sessions.models import PreviewSession, Quota


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

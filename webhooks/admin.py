from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webhooks.models import WebhookDelivery, WebhookEndpoint


class InspectOnly(admin.ModelAdmin):
    """Written through the dashboard's webhook pages or the service-role API (audited), never by hand here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(InspectOnly):
    list_display = ["url", "enabled", "description", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    fields = ("id", "url", "description", "event_types", "enabled", "created_at", "updated_at")
    readonly_fields = ("id", "url", "description", "event_types", "enabled", "created_at", "updated_at")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(InspectOnly):
    list_display = ["id", "endpoint", "message", "status", "attempts", "last_response_code", "created_at"]
    list_filter = ["status"]
    list_select_related = ["endpoint", "message"]
    search_fields = ["id", "message__id", "endpoint__url"]

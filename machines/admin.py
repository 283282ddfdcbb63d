from django.contrib import admin

from machines.models import Machine, MachineEvent


class MachineEventInline(admin.TabularInline):
    model = MachineEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_state", "to_state", "source", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ("id", "provider", "provider_machine_id", "state", "region", "cpu_kind", "memory_mb", "is_warm")
    list_filter = ("provider", "state", "region", "is_warm")
    search_fields = ("=id", "provider_machine_id", "address")
    readonly_fields = (
        "id",
        "token_hash",
        "created_at",
        "updated_at",
        "started_at",
        "stopped_at",
        "destroyed_at",
    )
    inlines = (MachineEventInline,)


@admin.register(MachineEvent)
class MachineEventAdmin(admin.ModelAdmin):
    list_display = ("at", "machine", "from_state", "to_state", "source")
    list_filter = ("source", "to_state")
    search_fields = ("=machine__id", "machine__provider_machine_id")
    list_select_related = ("machine",)
    readonly_fields = ("id", "machine", "from_state", "to_state", "source", "detail", "at")

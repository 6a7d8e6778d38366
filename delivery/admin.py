from django.contrib import admin, messages

from config.admin_sharding import ReadOnlyMixin, ShardedModelAdmin
from delivery.models import ConsoleMessage, Delivery, Device
from delivery.services.replay import requeue


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("id", "user_id", "channel", "priority", "status", "reason", "attempts", "updated_at")
    list_filter = (*ShardedModelAdmin.list_filter, "channel", "status", "priority")
    routable_id_fields = ("id", "notification_id")
    search_fields = ("user_id",)  # enables the search box; ShardedModelAdmin does the matching
    actions = ["requeue_selected"]
    ordering = ("-id",)

    @admin.action(description="Send selected failed / dead-lettered deliveries again")
    def requeue_selected(self, request, queryset):
        alias = queryset.db
        count = requeue(alias, list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} deliveries requeued on {alias}.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Device)
class DeviceAdmin(ShardedModelAdmin):
    list_display = ("id", "user_id", "platform", "active", "deactivated_reason", "last_seen_at")
    list_filter = (*ShardedModelAdmin.list_filter, "platform", "active")
    search_fields = ("user_id",)
    fields = ("user_id", "platform", "token_preview", "active", "deactivated_reason", "created_at", "last_seen_at")
    readonly_fields = ("user_id", "platform", "token_preview", "created_at", "last_seen_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ConsoleMessage)
class ConsoleMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "channel", "user_id", "address", "summary")
    list_filter = ("channel",)
    search_fields = ("user_id", "=delivery_id", "=notification_id")

    @admin.display(description="message")
    def summary(self, obj):
        payload = obj.payload or {}
        return (payload.get("subject") or payload.get("title") or payload.get("body") or "")[:80]

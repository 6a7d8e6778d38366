from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html_join

from config.admin_sharding import ReadOnlyMixin, ShardedModelAdmin, UserKeyedShardedModelAdmin
from delivery.services.status import deliveries_of
from notifications.models import ApiClient, InboxItem, Notification, NotificationType, Recipient
from notifications.services.api_keys import create_api_client


@admin.register(NotificationType)
class NotificationTypeAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "category", "default_priority", "required", "allow_critical")
    list_filter = ("category", "required")
    search_fields = ("key", "name")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "key_prefix", "may_send_critical", "is_active", "created_at")
    list_filter = ("is_active", "may_send_critical")
    readonly_fields = ("key_prefix", "created_at")
    fields = ("name", "allowed_types", "may_send_critical", "scopes", "is_active", "key_prefix", "created_at")
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        issued = create_api_client(
            obj.name, allowed_types=obj.allowed_types, may_send_critical=obj.may_send_critical, scopes=obj.scopes
        )
        obj.pk = issued.client.pk
        obj.key_prefix = issued.client.key_prefix
        self.message_user(
            request, f"API key for {obj.name} (shown only now, store it safely): {issued.key}", messages.WARNING
        )

    @admin.action(description="Revoke selected API clients")
    def revoke(self, request, queryset):
        for client in queryset:
            client.is_active = False
            client.save(update_fields=["is_active"])


@admin.register(Recipient)
class RecipientAdmin(UserKeyedShardedModelAdmin):
    list_display = ("user_id", "email", "phone", "locale", "timezone", "email_bounced", "updated_at")
    search_fields = ("user_id",)
    fields = (
        "user_id",
        "email",
        "email_verified",
        "email_bounced",
        "phone",
        "phone_verified",
        "locale",
        "timezone",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "user_id") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        now = timezone.now()
        if not change:
            obj.created_at = now
        obj.updated_at = now
        super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("id", "user_id", "type_key", "priority", "outcome", "created_at")
    list_filter = (*ShardedModelAdmin.list_filter, "outcome", "priority", "category")
    search_fields = ("user_id",)
    readonly_fields = ("deliveries",)
    ordering = ("-id",)

    @admin.display(description="deliveries")
    def deliveries(self, obj):
        rows = deliveries_of(obj._state.db, obj.id)
        return format_html_join(
            "",
            "<div>{}: <strong>{}</strong> {} (attempts {}) {}</div>",
            ((d.channel, d.status, d.reason, d.attempts, d.last_error) for d in rows),
        )


@admin.register(InboxItem)
class InboxItemAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("notification_id", "user_id", "title", "visible_at", "read_at")
    search_fields = ("user_id",)
    routable_id_fields = ("notification_id",)
    ordering = ("-notification_id",)

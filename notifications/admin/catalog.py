"""The global catalog: notification types, their templates, and API clients."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages

from notifications.admin.forms import ApiClientForm, NotificationTypeForm, TemplateForm
from notifications.models import ApiClient, NotificationType
from notifications.services.api_keys import create_api_client
from templates_app.models import Template


@admin.register(NotificationType)
class NotificationTypeAdmin(admin.ModelAdmin):
    form = NotificationTypeForm
    list_display = ("key", "name", "category", "channels", "fallbacks", "default_priority", "allow_critical")
    list_filter = ("category",)
    search_fields = ("key", "name")

    @admin.display(description="default channels")
    def channels(self, obj: NotificationType) -> str:
        return ", ".join(obj.default_channels)

    @admin.display(description="fallback chain")
    def fallbacks(self, obj: NotificationType) -> str:
        return " → ".join(obj.fallback_channels) or "-"


# Registered here, not in templates_app: templates_app imports no other app, and its admin
# needs the notification types for the type select. notifications may import templates_app.
@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ("type_key", "channel", "subject", "updated_at")
    list_filter = ("channel", "type_key")
    search_fields = ("type_key", "subject")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "key_prefix", "types", "scope_list", "may_send_critical", "is_active", "created_at")
    list_filter = ("is_active", "may_send_critical")
    readonly_fields = ("key_prefix", "created_at")
    fields = ("name", "allowed_types", "may_send_critical", "scopes", "is_active", "key_prefix", "created_at")
    actions = ["revoke"]

    @admin.display(description="allowed types")
    def types(self, obj: ApiClient) -> str:
        return ", ".join(obj.allowed_types)

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)  # fields cleaned by clean_client_fields
        issued = create_api_client(
            obj.name, allowed_types=obj.allowed_types, may_send_critical=obj.may_send_critical, scopes=obj.scopes
        )
        if not obj.is_active:
            issued.client.is_active = False
            issued.client.save(update_fields=["is_active"])
        for field in ApiClient._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.client, field.attname))
        obj._state.adding = False
        obj._state.db = issued.client._state.db
        self.message_user(
            request, f"API key for {obj.name} (shown only now, store it safely): {issued.key}", messages.WARNING
        )

    @admin.action(description="Revoke selected API clients (their keys stop working)")
    def revoke(self, request, queryset):
        revoked = 0
        for client in queryset.filter(is_active=True):
            client.is_active = False
            client.save(update_fields=["is_active"])  # the save signal clears the cached client
            revoked += 1
        self.message_user(
            request,
            f"Revoked {revoked} API client{'s' if revoked != 1 else ''}; servers that cached the key refuse it "
            f"within {settings.CONFIG_CACHE_SECONDS:g} seconds.",
            messages.SUCCESS,
        )

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.admin_sharding import ReadOnlyMixin, ShardedModelAdmin, ShardFilter, admin_link, user_link
from delivery.models import ConsoleMessage, Delivery, DeliveryStatus, Device
from delivery.services.replay import requeue

# A rendered payload's fields in reading order, with the label an operator sees.
_PAYLOAD_FIELDS = (
    ("subject", "Subject"),
    ("title", "Title"),
    ("text", "Text"),
    ("body", "Body"),
    ("html", "HTML (source)"),
    ("action_url", "Link"),
)
_PAYLOAD_BLOCK = '<div><strong>{}</strong><pre style="white-space: pre-wrap; margin: 2px 0 8px">{}</pre></div>'


def payload_blocks(payload: dict[str, Any] | None) -> SafeString:
    """A rendered payload as labelled text blocks; everything is escaped, so an email's HTML
    reads as its source and nothing in it runs in the admin."""
    payload = payload or {}
    labels = dict(_PAYLOAD_FIELDS)
    ordered = [key for key, _ in _PAYLOAD_FIELDS if payload.get(key)]
    ordered += [key for key in payload if key not in labels and payload[key] not in (None, "")]
    blocks = (
        (labels.get(key, key), value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False))
        for key in ordered
        for value in (payload[key],)
    )
    return format_html_join("", _PAYLOAD_BLOCK, blocks) or format_html("<em>{}</em>", "nothing rendered")


def notification_link(notification_id) -> str:
    return admin_link("admin:notifications_notification_change", notification_id, notification_id)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("id", "notification_link", "user", "channel", "priority", "status", "reason", "attempts", "updated_at")
    list_filter = (ShardFilter, "channel", "status", "priority")
    routable_id_fields = ("id", "notification_id")
    search_fields = ("user_id",)  # enables the search box; ShardedModelAdmin does the matching
    actions = ["requeue_selected"]
    ordering = ("-id",)
    readonly_fields = ("notification_link", "user", "content")

    def get_fields(self, request, obj=None):
        fields = ["id", "notification_link", "user", "channel", "priority", "status", "reason", "attempts", "address",
                  "provider", "provider_message_id", "last_error", "created_at", "updated_at", "sent_at", "published_at"]  # fmt: skip
        # Timers matter only in the states that use them; a sent delivery keeps stale ones.
        status = obj.status if obj is not None else None
        if status in (DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING):
            fields.append("next_attempt_at")
        if status == DeliveryStatus.QUEUED:
            fields.append("republish_at")
        if status == DeliveryStatus.SENDING:
            fields += ["lease_token", "lease_expires_at"]
        if obj is not None and obj.provider_details:
            fields.append("provider_details")  # SMS segments and price
        return [*fields, "content"]

    @admin.display(description="notification", ordering="notification_id")
    def notification_link(self, obj: Delivery) -> str:
        return notification_link(obj.notification_id)

    @admin.display(description="user id", ordering="user_id")
    def user(self, obj) -> str:
        return user_link(obj.user_id)

    @admin.display(description="rendered content")
    def content(self, obj: Delivery) -> SafeString:
        return payload_blocks(obj.payload)

    @admin.action(description="Send selected failed / dead-lettered deliveries again")
    def requeue_selected(self, request, queryset):
        selected = [pk for group in self.querysets_by_shard(request, queryset) for pk in group.values_list("id", flat=True)]
        count = requeue(selected)
        skipped = len(selected) - count
        note = f" ({skipped} skipped: only failed or dead-lettered deliveries are sent again)" if skipped else ""
        self.message_user(request, f"{count} deliveries queued to be sent again{note}.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        return False  # deleted with their notification (notifications' admin)


@admin.register(Device)
class DeviceAdmin(ShardedModelAdmin):
    list_display = ("id", "user", "platform", "active", "deactivated_reason", "consecutive_failures", "last_seen_at")
    list_filter = (ShardFilter, "platform", "active")
    search_fields = ("user_id",)
    ordering = ("-id",)
    fields = (
        "user",
        "platform",
        "token_preview",
        "active",
        "deactivated_reason",
        "consecutive_failures",
        "created_at",
        "last_seen_at",
    )
    readonly_fields = ("user", "platform", "token_preview", "consecutive_failures", "created_at", "last_seen_at")

    @admin.display(description="user id", ordering="user_id")
    def user(self, obj: Device) -> str:
        return user_link(obj.user_id)

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

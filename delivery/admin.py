from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.admin_sharding import ReadOnlyMixin, ShardedModelAdmin, ShardFilter, admin_link, user_link
from delivery.models import ConsoleMessage, DeadLetter, Delivery, DeliveryStatus, Device
from delivery.services import dlq
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
        if obj is not None and obj.fallback_of:
            fields.append("fallback_of")
        if obj is not None and obj.purged_at:
            fields.append("purged_at")
        # What the provider's webhooks reported, once they did.
        fields += [stamp for stamp in ("delivered_at", "opened_at", "clicked_at") if getattr(obj, stamp, None)]
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


class _DistinctValueFilter(admin.SimpleListFilter):
    """Choices are the values the dead letters have now (one small query per shard)."""

    field = ""

    def lookups(self, request, model_admin):
        return [(value, value) for value in dlq.distinct_values(self.field)]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ProviderFilter(_DistinctValueFilter):
    title = parameter_name = field = "provider"


class ReasonFilter(_DistinctValueFilter):
    title = parameter_name = field = "reason"


class AgeFilter(admin.SimpleListFilter):
    """How long ago the delivery ended up here (its last update)."""

    title = "age"
    parameter_name = "age"
    CHOICES = {
        "lt1h": ("newer than 1 hour", "newer", timedelta(hours=1)),
        "lt1d": ("newer than 1 day", "newer", timedelta(days=1)),
        "gt1h": ("older than 1 hour", "older", timedelta(hours=1)),
        "gt1d": ("older than 1 day", "older", timedelta(days=1)),
        "gt7d": ("older than 7 days", "older", timedelta(days=7)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in self.CHOICES.items()]

    def queryset(self, request, queryset):
        if self.value() not in self.CHOICES:
            return queryset
        _, direction, age = self.CHOICES[self.value()]
        cutoff = timezone.now() - age
        return queryset.filter(updated_at__lt=cutoff) if direction == "older" else queryset.filter(updated_at__gte=cutoff)


class DeadLetterStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(status.value, status.label) for status in dlq.DEAD_STATUSES]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(DeliveryAdmin):
    """Failed and dead-lettered deliveries of every shard (not purged), newest first, to
    replay or purge. The same rows as "Deliveries", narrowed the way an operator on call
    looks at them."""

    list_display = ("id", "notification_link", "user", "channel", "provider", "status", "reason", "attempts", "updated_at")  # fmt: skip
    list_filter = (ShardFilter, "channel", ProviderFilter, ReasonFilter, AgeFilter, DeadLetterStatusFilter)
    actions = ["replay_selected", "purge_selected"]
    ordering = ("-updated_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=dlq.DEAD_STATUSES, purged_at__isnull=True)

    def _selection(self, request, queryset) -> dlq.Selection:
        ids = [str(pk) for group in self.querysets_by_shard(request, queryset) for pk in group.values_list("id", flat=True)]
        return dlq.select(ids=ids)

    @admin.action(description="Replay selected dead letters (sent again at once)")
    def replay_selected(self, request, queryset):
        count = dlq.replay(self._selection(request, queryset))
        self.message_user(request, f"{count} dead letters queued to be sent again.", messages.SUCCESS)

    @admin.action(description="Purge selected dead letters (kept as history, content dropped)")
    def purge_selected(self, request, queryset):
        count = dlq.purge(self._selection(request, queryset))
        self.message_user(request, f"{count} dead letters purged.", messages.SUCCESS)


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

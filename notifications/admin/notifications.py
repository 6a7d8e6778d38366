"""Notifications and inbox items: read-only, with their live delivery status and content."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.admin_sharding import ReadOnlyMixin, ShardedModelAdmin, ShardFilter, admin_link, rows_by_shard, user_link
from delivery.admin import notification_link, payload_blocks
from delivery.services.status import channel_summaries, deliveries_by_notification, deliveries_of, overall_status
from notifications.models import ApiClient, Category, InboxItem, Notification
from notifications.services.deletion import delete_notifications

# overall_status() values as an operator reads them.
STATUS_LABELS = {
    "scheduled": "scheduled",
    "in_progress": "in progress",
    "sent": "sent",
    "partially_sent": "partially sent",
    "failed": "failed",
    "skipped": "skipped (no channel to send on)",
}


def sender_labels(senders: Iterable[str]) -> dict[str, str]:
    """How each ``Notification.sender`` reads: an API client's name (a link to it), a
    campaign's id, the system part's name; one query for all the clients."""
    senders = set(senders)
    client_ids = {int(key[7:]) for key in senders if key.startswith("client:") and key[7:].isdigit()}
    names = dict(ApiClient.objects.filter(id__in=client_ids).values_list("id", "name")) if client_ids else {}
    labels = {}
    for key in senders:
        kind, _, ident = key.partition(":")
        if kind == "client" and ident.isdigit() and int(ident) in names:
            labels[key] = admin_link("admin:notifications_apiclient_change", names[int(ident)], ident)
        elif kind == "client":
            labels[key] = format_html("API client {} (deleted)", ident)
        elif kind == "campaign":
            labels[key] = format_html("campaign {}", ident)
        elif kind == "system":
            labels[key] = format_html("system: {}", ident)
        else:
            labels[key] = format_html("{}", key)
    return labels


class CategoryFilter(admin.SimpleListFilter):
    """The category choices, without reading every shard for the values in use."""

    title = "category"
    parameter_name = "category"

    def lookups(self, request, model_admin):
        return Category.choices

    def queryset(self, request, queryset):
        return queryset.filter(category=self.value()) if self.value() else queryset


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("id", "user", "type_key", "priority", "sender_name", "outcome", "live_status", "created_at")
    list_filter = (ShardFilter, "outcome", "priority", CategoryFilter)
    search_fields = ("user_id",)  # enables the search box; ShardedModelAdmin does the matching
    ordering = ("-id",)
    fields = ("id", "user", "sender_name", "type_key", "category", "priority", "outcome", "live_status", "send_at",
              "created_at", "idempotency_key", "data_text", "deliveries")  # fmt: skip
    readonly_fields = fields

    def prepare_rows(self, request, rows: Sequence[Notification]) -> None:
        # The page's live status: one query per shard for all its rows' deliveries.
        for alias, group in rows_by_shard(rows).items():
            summaries = channel_summaries(alias, [row.id for row in group])
            for row in group:
                row._channels = summaries.get(row.id, [])
        labels = sender_labels(row.sender for row in rows)
        for row in rows:
            row._sender_label = labels[row.sender]

    @admin.display(description="user id", ordering="user_id")
    def user(self, obj: Notification) -> str:
        return user_link(obj.user_id)

    @admin.display(description="sender")
    def sender_name(self, obj: Notification) -> str:
        label = getattr(obj, "_sender_label", None)
        return label if label is not None else sender_labels([obj.sender])[obj.sender]

    @admin.display(description="status")
    def live_status(self, obj: Notification) -> str:
        """What happened since it was accepted, from its deliveries now."""
        channels = getattr(obj, "_channels", None)
        if channels is None:
            channels = [{"channel": d.channel, "status": d.status} for d in deliveries_of(obj._state.db, obj.id)]
        label = STATUS_LABELS[overall_status(c["status"] for c in channels)]
        if not channels:
            return label
        detail = ", ".join(f"{c['channel']} {c['status']}" for c in channels)
        return format_html('{} <span class="quiet">({})</span>', label, detail)

    @admin.display(description="data")
    def data_text(self, obj: Notification) -> SafeString:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', json.dumps(obj.data, indent=2, ensure_ascii=False))

    @admin.display(description="deliveries and rendered content")
    def deliveries(self, obj: Notification) -> SafeString:
        rows = deliveries_of(obj._state.db, obj.id)
        if not rows:
            return format_html("<em>{}</em>", "no deliveries")
        return format_html_join(
            "",
            '<div style="margin-bottom: 1em"><strong>{}</strong>: {} {} · attempts {} · {}{}{}</div>',
            (
                (
                    d.channel,
                    d.status,
                    f"({d.reason})" if d.reason else "",
                    d.attempts,
                    admin_link("admin:delivery_delivery_change", "delivery " + str(d.id), d.id),
                    format_html("<div>last error: {}</div>", d.last_error) if d.last_error else "",
                    payload_blocks(d.payload),
                )
                for d in rows
            ),
        )

    # --- deletion: the notification, its deliveries and inbox item together ----------------

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        listed: list = []
        counts = {"notifications": len(objs), "deliveries": 0, "inbox items": 0}
        for alias, group in rows_by_shard(objs).items():
            ids = [n.id for n in group]
            deliveries = deliveries_by_notification(alias, ids)
            inbox = set(InboxItem.objects.using(alias).filter(notification_id__in=ids).values_list("notification_id", flat=True))
            for notification in group:
                children = [
                    format_html("Delivery: {} {} ({})", d.channel, d.status, d.id) for d in deliveries.get(notification.id, [])
                ]
                if notification.id in inbox:
                    children.append(format_html("Inbox item: {}", notification.id))
                counts["deliveries"] += len(deliveries.get(notification.id, []))
                counts["inbox items"] += notification.id in inbox
                listed.append(format_html("Notification: {} ({})", notification_link(notification.id), notification))
                if children:
                    listed.append(children)
        return listed, counts, set(), []

    def delete_model(self, request, obj):
        delete_notifications([obj.id])

    def delete_queryset(self, request, queryset):
        delete_notifications(queryset.values_list("id", flat=True))


@admin.register(InboxItem)
class InboxItemAdmin(ReadOnlyMixin, ShardedModelAdmin):
    list_display = ("headline", "notification", "user", "visible_at", "read_at")
    list_display_links = ("headline",)
    search_fields = ("user_id",)
    routable_id_fields = ("notification_id",)
    ordering = ("-notification_id",)
    fields = ("notification", "user", "type_key", "category", "title", "body", "action_url", "created_at",
              "visible_at", "seen_at", "read_at", "archived_at")  # fmt: skip
    readonly_fields = ("notification", "user")

    @admin.display(description="title")
    def headline(self, obj: InboxItem) -> str:
        return obj.title or obj.type_key

    @admin.display(description="notification", ordering="notification_id")
    def notification(self, obj: InboxItem) -> str:
        return notification_link(obj.notification_id)

    @admin.display(description="user id", ordering="user_id")
    def user(self, obj: InboxItem) -> str:
        return user_link(obj.user_id)

"""What happened to a notification, as its sender may see it."""

from __future__ import annotations

from typing import Any

from config.sharding import parse_routable_id, shard_for_id
from delivery.services.status import deliveries_of, overall_status
from notifications.models import Notification
from notifications.services.sending import Sender


def notification_status(sender: Sender, raw_id: str) -> dict[str, Any] | None:
    """The notification with its per-channel deliveries, or None if this sender cannot see it.

    A sender sees only the notifications it sent; anything else is indistinguishable from an
    id that does not exist.
    """
    notification_id = parse_routable_id(raw_id)
    if notification_id is None:
        return None
    alias = shard_for_id(notification_id)
    notification = Notification.objects.using(alias).filter(id=notification_id, sender=sender.key).first()
    if notification is None:
        return None
    deliveries = deliveries_of(alias, notification_id)
    channel_of = {d.id: d.channel for d in deliveries}
    fallback_to = {d.fallback_of: d.channel for d in deliveries if d.fallback_of}
    return {
        "id": notification.id,
        "user_id": notification.user_id,
        "type": notification.type_key,
        "priority": notification.priority,
        "accepted_as": notification.outcome,
        "status": overall_status(d.status for d in deliveries),
        "created_at": notification.created_at,
        "send_at": notification.send_at,
        "channels": [
            {
                "channel": d.channel,
                "status": d.status,
                "reason": d.reason,
                "fallback_of": channel_of.get(d.fallback_of) if d.fallback_of else None,
                "fallback_to": fallback_to.get(d.id),
                "attempts": d.attempts,
                "provider": d.provider,
                "last_error": d.last_error,
                "created_at": d.created_at,
                "updated_at": d.updated_at,
                "sent_at": d.sent_at,
                "delivered_at": d.delivered_at,
                "opened_at": d.opened_at,
                "clicked_at": d.clicked_at,
                "next_attempt_at": d.next_attempt_at,
                "possibly_duplicated": d.possibly_duplicated,
            }
            for d in deliveries
        ],
    }

"""The in-app provider: a notification for a connected user goes to their live connections
now; for an offline user it stays in the inbox (written with the notification) for the
next time the bell connects.

Frames are published on the channel layer to the group ``user.<id>`` that every WebSocket and
SSE connection of that user joins (channels_redis pub/sub in the services profile: one
publish reaches every Daphne process; in memory in the embedded one). The inbox item itself
belongs to ``notifications``, which this app does not import: the provider sends
``delivery.signals.inapp_published`` and ``notifications`` marks the items delivered.
Offline users' standbys (a type whose fallback chain starts with in-app, e.g. push) are
queued at once, and offline users are announced with ``delivery.signals.inapp_offline``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from delivery import signals
from delivery.providers.base import OutboundMessage, SendResult, TemporaryDeliveryError
from delivery.services import fallback, presence

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
BROADCAST_GROUP = "broadcast"
# Group names allow letters, digits, '-', '_' and '.'; user ids may also hold ':' and '@'.
# '_' escapes itself and those, so that two user ids never share a group.
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def user_group(user_id: str) -> str:
    return "user." + _UNSAFE.sub(lambda match: f"_{ord(match.group()):02x}", user_id)


def created_at(notification_id) -> str:
    """The creation time a UUIDv7 carries (its first 48 bits: unix milliseconds)."""
    millis = notification_id.int >> 80
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notification_frame(message: OutboundMessage) -> dict[str, Any]:
    """The protocol's ``notification`` frame (docs/inapp-protocol.md) from a delivery. The
    cursor is the notification id: UUIDv7, so ids sort by creation time."""
    payload = message.payload or {}
    return {
        "type": "notification",
        "id": str(message.notification_id),
        "title": payload.get("title", ""),
        "body": payload.get("body", ""),
        "action_url": payload.get("action_url", ""),
        "category": payload.get("category", ""),
        "created_at": created_at(message.notification_id),
        "cursor": str(message.notification_id),
    }


class InAppProvider:
    name = "inapp"

    def __init__(self, *, channel: str):
        self.channel = channel

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        try:
            online = presence.online_counts(m.user_id for m in messages)
        except Exception as exc:  # Redis down: retrying later beats guessing who is online
            raise TemporaryDeliveryError(f"presence unavailable ({type(exc).__name__})") from None
        live = [m for m in messages if m.user_id in online]
        offline = [m for m in messages if m.user_id not in online]
        if live:
            try:
                async_to_sync(_publish)(live)
            except Exception as exc:
                raise TemporaryDeliveryError(f"channel layer unavailable ({type(exc).__name__})") from None
            signals.inapp_published.send(sender=type(self), messages=live)
        if offline:
            # The item waits in the inbox; a standby behind it (the type's chain starts with
            # in-app) goes out now. A failure here must not fail the in-app delivery itself.
            try:
                fallback.activate_behind_offline([m.delivery_id for m in offline])
            except Exception:
                logger.exception("activating the fallbacks of %d offline in-app deliveries failed", len(offline))
            signals.inapp_offline.send(sender=type(self), messages=offline)
        logger.debug("in-app: %d published live, %d left in the inbox", len(live), len(offline))
        return [
            SendResult(m.delivery_id, provider_message_id="live" if m.user_id in online else "inbox") for m in messages
        ]


async def _publish(messages: Sequence[OutboundMessage]) -> None:
    layer = get_channel_layer()
    for message in messages:
        await layer.group_send(
            user_group(message.user_id), {"type": "inbox.notification", "frame": notification_frame(message)}
        )

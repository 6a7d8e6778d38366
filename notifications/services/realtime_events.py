"""Tell a user's live connections (WebSocket, SSE) that something changed, from sync code."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from delivery.providers.inapp import user_group

logger = logging.getLogger(__name__)


def announce_inbox_changed(user_id: str) -> None:
    """Items were marked (read, archived...): every connection of the user sends its
    ``unread_count`` again. Best effort: a client also gets the count on its next reconnect."""
    try:
        async_to_sync(get_channel_layer().group_send)(user_group(user_id), {"type": "inbox.changed"})
    except Exception:
        logger.warning("could not announce an inbox change to live connections", exc_info=True)

"""What a WebSocket and an SSE stream share: presence while connected, replay after a cursor
without duplicates, and the inbox calls the protocol's client messages make."""

from __future__ import annotations

import uuid
from collections import OrderedDict

from channels.db import database_sync_to_async
from django.conf import settings

from delivery.providers.inapp import BROADCAST_GROUP, user_group
from delivery.services import presence
from notifications.services import inbox

# Ids this connection sent, remembered so that a live frame racing a replay is not sent twice.
_REMEMBERED = 2000


def _in_pool(func):
    """Run a sync call (ORM, Redis) in the event loop's thread pool. Not channels' default
    (thread_sensitive=True): Daphne sets no per-connection context, so that would be one
    thread for every connection of the process, and one slow query would hold up the
    frames of all of them (bench/inapp_latency: seconds of queueing at 100 frames/s). These
    calls share no state and each takes its own pooled database connection."""
    return database_sync_to_async(func, thread_sensitive=False)


class LiveSession:
    def __init__(self, user_id: str):
        self.user_id = user_id
        self.connection_id = uuid.uuid4().hex
        self.groups = (user_group(user_id), BROADCAST_GROUP)
        self._sent: OrderedDict[str, None] = OrderedDict()
        self.count = 0  # the unread count last sent

    async def join(self, layer, channel_name: str) -> None:
        # Join before reading anything to replay: whatever is published from now on reaches
        # this connection, and whatever was committed before is in the replay. The overlap
        # of the two is dropped by ``first_time``.
        for group in self.groups:
            await layer.group_add(group, channel_name)
        await self.heartbeat()

    async def leave(self, layer, channel_name: str) -> None:
        for group in self.groups:
            await layer.group_discard(group, channel_name)
        await _in_pool(presence.leave)(self.user_id, self.connection_id)

    async def heartbeat(self) -> None:
        await _in_pool(presence.touch)(self.user_id, self.connection_id)

    def first_time(self, notification_id: str) -> bool:
        """True once per id: the frame should go out; False for one already sent."""
        if notification_id in self._sent:
            return False
        self._sent[notification_id] = None
        if len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return True

    async def missed(self, cursor: str) -> list[dict]:
        """``notification`` frames of what came after ``cursor``, oldest first (not yet sent
        on this connection). Raises inbox.InvalidCursor for a cursor that is not ours."""
        items = await _in_pool(inbox.items_after)(self.user_id, cursor, limit=settings.INAPP_REPLAY_LIMIT)
        return [notification_frame(item) for item in items if self.first_time(item["id"])]

    async def unread_count(self) -> dict:
        self.count = await _in_pool(inbox.unread_count)(self.user_id)
        return {"type": "unread_count", "count": self.count}

    async def count_after(self, event: dict) -> dict:
        """The ``unread_count`` to send after a live notification. A broadcast reaches every
        connection at once: each adds one to the count it last sent instead of asking the
        database (a user who read it elsewhere is corrected by the next count)."""
        if event.get("broadcast"):
            self.count += 1
            return {"type": "unread_count", "count": self.count}
        return await self.unread_count()


FRAME_FIELDS = ("id", "title", "body", "action_url", "category", "created_at", "cursor")


def notification_frame(item: dict) -> dict:
    return {"type": "notification", **{name: item[name] for name in FRAME_FIELDS}}

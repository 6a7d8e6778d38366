"""``/ws/notifications/``: the bell's WebSocket (protocol v1, docs/inapp-protocol.md).

Authentication comes first: a user token in the query string (``?token=``) or in the first
message (``{"type": "auth", "token": ...}``) within INAPP_AUTH_TIMEOUT_SECONDS. Anything else
— a bad, forged or expired token, another message first, silence — closes the socket with
4401 before any data is sent.

Messages from the channel layer are dispatched one at a time, after the handler before them
has finished: a live notification published while a ``resume`` replays waits until the
replay is out, and is dropped if the replay already sent it. So a client sees what it missed
in order, then live ones, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from delivery.providers.inapp import PROTOCOL_VERSION
from notifications.realtime.session import LiveSession
from notifications.services import inbox
from notifications.services.realtime_events import announce_inbox_changed
from notifications.services.user_tokens import InvalidUserToken, verify

logger = logging.getLogger(__name__)

UNAUTHORIZED = 4401  # like HTTP 401: the client should get a new token before reconnecting
MAX_IDS = 500


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    session: LiveSession | None = None
    _auth_timer: asyncio.Task | None = None
    _heartbeat: asyncio.Task | None = None

    async def connect(self) -> None:
        # Accept first: a close code can only be sent on an accepted socket (refusing the
        # handshake is an HTTP 403 the browser does not show). Nothing is sent before auth.
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [None])[0]
        if token is None:
            self._auth_timer = asyncio.create_task(self._close_unless_authenticated())
            return
        await self._authenticate(token, cursor=(query.get("cursor") or [None])[0])

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(settings.INAPP_AUTH_TIMEOUT_SECONDS)
        if self.session is None:
            await self.close(code=UNAUTHORIZED)

    async def _authenticate(self, token: object, cursor: str | None) -> None:
        try:
            user_id = verify(token if isinstance(token, str) else "")
        except InvalidUserToken as exc:
            logger.info("websocket closed: %s", exc)  # the reason, never the token
            await self.close(code=UNAUTHORIZED)
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.session = LiveSession(user_id)
        await self.session.join(self.channel_layer, self.channel_name)
        self._heartbeat = asyncio.create_task(self._beat())
        await self.send_json({"type": "hello", "v": PROTOCOL_VERSION})
        if cursor:
            await self._resume(cursor)
        await self.send_json(await self.session.unread_count())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.PRESENCE_HEARTBEAT_SECONDS)
            try:
                await self.session.heartbeat()
            except Exception:  # Redis away for a moment: the next beat tries again
                logger.warning("presence heartbeat failed")

    async def disconnect(self, code) -> None:
        for task in (self._auth_timer, self._heartbeat):
            if task is not None:
                task.cancel()
        if self.session is not None:
            await self.session.leave(self.channel_layer, self.channel_name)

    # --- client -> server ---------------------------------------------------------------

    async def receive_json(self, content, **kwargs) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.session is None:
            if kind != "auth":
                await self.close(code=UNAUTHORIZED)
                return
            await self._authenticate(content.get("token"), cursor=content.get("cursor"))
            return
        handler = getattr(self, f"_client_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            await self._error("unknown_type", "type: must be one of ack, read, read_all, ping, resume")
            return
        await handler(content)

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    def _ids(self, content: dict) -> list[str] | None:
        ids = content.get("ids")
        if not isinstance(ids, list) or not 0 < len(ids) <= MAX_IDS or not all(isinstance(i, str) for i in ids):
            return None
        try:
            for value in ids:
                inbox.parse_id(value)
        except inbox.InvalidCursor:
            return None
        return ids

    async def _client_ping(self, content) -> None:
        await self.session.heartbeat()
        await self.send_json({"type": "pong"})

    async def _client_ack(self, content) -> None:
        ids = self._ids(content)
        if ids is None:
            await self._error("invalid_ids", f"ids: must be 1 to {MAX_IDS} notification ids")
            return
        await database_sync_to_async(inbox.acknowledge)(self.session.user_id, ids)

    async def _client_read(self, content) -> None:
        ids = self._ids(content)
        if ids is None:
            await self._error("invalid_ids", f"ids: must be 1 to {MAX_IDS} notification ids")
            return
        await self._changed(await database_sync_to_async(inbox.mark_read)(self.session.user_id, ids))

    async def _client_read_all(self, content) -> None:
        await self._changed(await database_sync_to_async(inbox.mark_all_read)(self.session.user_id))

    async def _changed(self, changed: int) -> None:
        if changed:  # every connection of the user (this one too) sends the new count
            await database_sync_to_async(announce_inbox_changed)(self.session.user_id)
        else:
            await self.send_json(await self.session.unread_count())

    async def _client_resume(self, content) -> None:
        cursor = content.get("cursor")
        if not isinstance(cursor, str) or not cursor:
            await self._error("invalid_cursor", "cursor: must be the cursor of the last notification received")
            return
        await self._resume(cursor)
        await self.send_json(await self.session.unread_count())

    async def _resume(self, cursor: str) -> None:
        try:
            frames = await self.session.missed(cursor)
        except inbox.InvalidCursor:
            await self._error("invalid_cursor", "cursor: is not a cursor this server gave")
            return
        for frame in frames:
            await self.send_json(frame)

    # --- channel layer -> server ------------------------------------------------------------

    async def inbox_notification(self, event) -> None:
        frame = event["frame"]
        if self.session is None or not self.session.first_time(frame["id"]):
            return
        await self.send_json(frame)
        await self.send_json(await self.session.count_after(event))

    async def inbox_changed(self, event) -> None:
        if self.session is not None:
            await self.send_json(await self.session.unread_count())

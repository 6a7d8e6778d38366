"""``GET /api/v1/me/stream``: the bell over Server-Sent Events, for networks that block
WebSockets. The same events as the WebSocket (``notification``, ``unread_count``), the same
user token (``Authorization: Bearer`` or ``?token=``, since ``EventSource`` cannot set
headers). Each notification is sent with ``id: <cursor>``: a browser reconnecting sends it
back as ``Last-Event-ID`` and gets what it missed, in order, before live events.

An async view streaming from the channel layer: serve it from Daphne (the ``ws`` process in
the services profile; gunicorn's sync workers would hold a thread per stream).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse

from notifications.api.user_auth import user_for
from notifications.realtime.session import LiveSession
from notifications.services import inbox
from notifications.services.user_tokens import InvalidUserToken

logger = logging.getLogger(__name__)

RETRY_MILLISECONDS = 3000


def _event(kind: str, data: dict, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"status": 401, "code": "not_authenticated", "message": message, "errors": []}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="user"'
    return response


async def inbox_stream(request: HttpRequest):
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        user_id = user_for(request.META, request.GET)
    except InvalidUserToken:
        return _unauthorized("invalid or expired user token")
    if user_id is None:
        return _unauthorized("send a user token: Authorization: Bearer <token>, or ?token=")
    cursor = request.headers.get("Last-Event-ID") or request.GET.get("cursor") or None
    if cursor:
        try:
            inbox.parse_id(cursor)
        except inbox.InvalidCursor:
            message = "Last-Event-ID: is not an event id this stream sent"
            return JsonResponse(
                {"status": 400, "code": "invalid_request", "message": message,
                 "errors": [{"field": "Last-Event-ID", "code": "invalid_cursor", "message": message[15:]}]},
                status=400,
            )  # fmt: skip
    response = StreamingHttpResponse(_events(LiveSession(user_id), cursor), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def _events(session: LiveSession, cursor: str | None) -> AsyncIterator[bytes]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await session.join(layer, channel)
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        if cursor:
            for frame in await session.missed(cursor):
                yield _event("notification", frame, frame["cursor"])
        yield _event("unread_count", await session.unread_count())
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=settings.PRESENCE_HEARTBEAT_SECONDS)
            except TimeoutError:
                await session.heartbeat()
                yield b": keep-alive\n\n"  # also tells a dead client's socket apart from an idle one
                continue
            if message.get("type") == "inbox.notification":
                frame = message["frame"]
                if session.first_time(frame["id"]):
                    yield _event("notification", frame, frame["cursor"])
                    yield _event("unread_count", await session.count_after(message))
            elif message.get("type") == "inbox.changed":
                yield _event("unread_count", await session.unread_count())
    finally:
        # The client went away (Django cancels the response) or the server stops.
        await session.leave(layer, channel)

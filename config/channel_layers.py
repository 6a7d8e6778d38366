"""The embedded profile's channel layer: channels' in-memory layer, safe to publish to from
the in-process worker's thread.

The in-memory layer's queues belong to the server's event loop. The worker publishes from
its own thread (``async_to_sync`` runs a loop of its own there), and an asyncio future set
from a foreign thread does not wake the server's loop: frames waited for its next timer,
~0.6 s. Here a send from another loop is handed to the server's loop thread-safely.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class ServerLoopInMemoryChannelLayer(InMemoryChannelLayer):
    _server_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel):
        # Only the server's consumers receive: their loop is the one the queues belong to.
        self._server_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_server_loop(self, coroutine) -> None:
        server = self._server_loop
        if server is None or server is asyncio.get_running_loop() or not server.is_running():
            await coroutine
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, server))

    async def send(self, channel, message):
        await self._on_server_loop(super().send(channel, message))

    async def group_send(self, group, message):
        await self._on_server_loop(super().group_send(group, message))

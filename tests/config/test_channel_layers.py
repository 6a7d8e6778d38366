"""The embedded profile's in-memory channel layer wakes the server's loop when the worker's
thread publishes (channels' own layer leaves the frame waiting for the loop's next timer)."""

from __future__ import annotations

import asyncio
import threading

from asgiref.sync import async_to_sync

from config.channel_layers import ServerLoopInMemoryChannelLayer


def test_a_group_send_from_another_thread_wakes_the_receiving_loop():
    layer = ServerLoopInMemoryChannelLayer()
    joined = threading.Event()
    server_loop = asyncio.new_event_loop()  # a server's loop: runs until stopped, no timers
    thread = threading.Thread(target=server_loop.run_forever, daemon=True)
    thread.start()

    async def consumer() -> dict:
        channel = await layer.new_channel()
        await layer.group_add("user.alice", channel)
        joined.set()
        return await layer.receive(channel)

    received = asyncio.run_coroutine_threadsafe(consumer(), server_loop)
    try:
        assert joined.wait(5)
        async_to_sync(layer.group_send)("user.alice", {"type": "inbox.changed"})  # from this thread
        assert received.result(timeout=5) == {"type": "inbox.changed"}
    finally:
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)
        server_loop.close()

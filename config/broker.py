"""The Redis broker transport, with a fix that keeps workers alive through a broker outage.

Celery 5.7.0 and kombu 5.7.0 (the newest on PyPI) crash a worker when Redis goes away while
a task is running and the worker has room for more (a BRPOP is in flight):

1. On connection loss, celery's ``Consumer.on_connection_error_after_connected`` calls
   ``connection.collect()`` and then ``connection.close()`` on the same kombu connection
   (5.6.x only collected).
2. ``collect()`` closes the default channel, but the Redis ``Channel.close`` fails on the dead
   BRPOP socket before the channel is marked closed and before its unacknowledged messages
   are restored; ``collect()`` swallows that and detaches the transport
   (``transport.client = None``).
3. ``close()`` closes the channel again: it drops its connection pools, then restores the
   unacknowledged messages, which needs a new pool, whose parameters come from
   ``transport.client``: ``AttributeError: 'NoneType' object has no attribute 'hostname'``.
   That is not a connection error, so it escapes the consumer and the worker stops
   ("Unrecoverable error"). Acknowledging a task that finishes after the loss fails the same way.

A channel here remembers the parameters it connected with, so those late restores and
acknowledgements reconnect instead of raising. Remove this module (and
``CELERY_BROKER_TRANSPORT``) once a kombu/celery release no longer closes a collected
connection's channel again: tests/config/test_broker_outage.py shows when the stock transport
survives.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._known_connparams: dict[bool, dict[str, Any]] = {}
        super().__init__(*args, **kwargs)  # connects (asynchronous pool) and pings
        self._connparams(asynchronous=False)  # remembered now, while the transport is attached

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None and asynchronous in self._known_connparams:
            return dict(self._known_connparams[asynchronous])
        params = super()._connparams(asynchronous=asynchronous)
        self._known_connparams[asynchronous] = dict(params)
        return params


class Transport(redis.Transport):
    Channel = Channel

"""Who has a live connection (WebSocket or SSE) to the bell, across every server process.

Redis holds one sorted set per user, ``presence:<user_id>``: a member per connection, scored
with the time it expires. A connection refreshes its score (and the key's TTL) on every
heartbeat, so a server that dies without saying goodbye leaves entries that simply expire.
A user is online while any entry of theirs is in the future. The embedded profile has no
Redis and runs one process: a dict in this process does the same job there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.conf import settings

from config.redis import get_redis

_KEY = "presence:{}"
_local: dict[str, dict[str, float]] = {}
_local_lock = threading.Lock()


def _ttl() -> float:
    return settings.PRESENCE_TTL_SECONDS


def touch(user_id: str, connection_id: str) -> None:
    """Register a connection, or refresh it (call at least every PRESENCE_HEARTBEAT_SECONDS)."""
    expires = time.time() + _ttl()
    client = get_redis()
    if client is None:
        with _local_lock:
            _local.setdefault(user_id, {})[connection_id] = expires
        return
    key = _KEY.format(user_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(key, {connection_id: expires})
        # Expired connections of processes that died go at the next heartbeat of anyone.
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.expire(key, int(_ttl()) + 1)
        pipe.execute()


def leave(user_id: str, connection_id: str) -> None:
    client = get_redis()
    if client is None:
        with _local_lock:
            connections = _local.get(user_id, {})
            connections.pop(connection_id, None)
            if not connections:
                _local.pop(user_id, None)
        return
    client.zrem(_KEY.format(user_id), connection_id)


def connection_count(user_id: str) -> int:
    return online_counts([user_id]).get(user_id, 0)


def online_counts(user_ids: Iterable[str]) -> dict[str, int]:
    """Live connections per user, for the users that have any (one round trip)."""
    users = list(dict.fromkeys(user_ids))
    now = time.time()
    client = get_redis()
    if client is None:
        with _local_lock:
            counts = {u: sum(1 for e in _local.get(u, {}).values() if e > now) for u in users}
    else:
        with client.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.zcount(_KEY.format(user_id), now, "+inf")
            counts = dict(zip(users, pipe.execute(), strict=True))
    return {user_id: count for user_id, count in counts.items() if count}

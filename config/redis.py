"""One shared Redis client per process (None in the embedded profile, which has no Redis)."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_client: redis.Redis | None = None
_url: str | None = None
_lock = threading.Lock()


def get_redis() -> redis.Redis | None:
    global _client, _url
    url = settings.REDIS_URL
    if not url:
        return None
    with _lock:
        if _client is None or _url != url:
            _client = redis.Redis.from_url(
                url,
                socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
                health_check_interval=30,
            )
            _url = url
        return _client

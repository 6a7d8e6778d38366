"""A per-process cache for configuration rows read on every request (clients, types, templates).

Entries live CONFIG_CACHE_SECONDS (0 disables caching). The TTL is read from settings when the
cache is built, not per lookup: Django's lazy settings are slow on a hot path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import TTLCache
from django.conf import settings

T = TypeVar("T")
_ABSENT = object()


class ConfigCache(Generic[T]):
    def __init__(self, load: Callable[[str], T], *, maxsize: int = 10_000) -> None:
        self._load = load
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: TTLCache | None = None
        self._enabled: bool | None = None

    def get(self, key: str) -> T:
        with self._lock:
            if self._enabled is None:
                ttl = settings.CONFIG_CACHE_SECONDS
                self._enabled = ttl > 0
                self._entries = TTLCache(maxsize=self._maxsize, ttl=ttl) if self._enabled else None
            value = self._entries.get(key, _ABSENT) if self._enabled else _ABSENT
        if value is _ABSENT:
            value = self._load(key)
            with self._lock:
                if self._entries is not None:
                    self._entries[key] = value
        return value  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._entries = None
            self._enabled = None

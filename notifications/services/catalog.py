"""Notification types and API clients as the hot path needs them, cached per process.

Both are read on every request and change rarely. A save or delete through the ORM clears
this process's copy at once; other processes see the change within CONFIG_CACHE_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.caching import ConfigCache
from notifications.models import ApiClient, NotificationType


@dataclass(frozen=True)
class TypeInfo:
    key: str
    category: str
    default_channels: tuple[str, ...]
    default_priority: str
    required: bool
    allow_critical: bool
    fallback_channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientInfo:
    id: int
    name: str
    key_hash: str
    allowed_types: frozenset[str] | None  # None: every type
    may_send_critical: bool
    scopes: frozenset[str]

    def may_send_type(self, type_key: str) -> bool:
        return self.allowed_types is None or type_key in self.allowed_types


def _load_type(key: str) -> TypeInfo | None:
    row = NotificationType.objects.filter(key=key).first()
    if row is None:
        return None
    return TypeInfo(
        key=row.key,
        category=row.category,
        default_channels=tuple(row.default_channels),
        default_priority=row.default_priority,
        required=row.required,
        allow_critical=row.allow_critical,
        fallback_channels=tuple(row.fallback_channels or ()),
    )


def _load_client(prefix: str) -> ClientInfo | None:
    row = ApiClient.objects.filter(key_prefix=prefix, is_active=True).first()
    if row is None:
        return None
    return ClientInfo(
        id=row.id,
        name=row.name,
        key_hash=row.key_hash,
        allowed_types=None if "*" in row.allowed_types else frozenset(row.allowed_types),
        may_send_critical=row.may_send_critical,
        scopes=frozenset(row.scopes),
    )


_types: ConfigCache[TypeInfo | None] = ConfigCache(_load_type)
_clients: ConfigCache[ClientInfo | None] = ConfigCache(_load_client)


def get_type(key: str) -> TypeInfo | None:
    return _types.get(key)


def get_client_by_prefix(prefix: str) -> ClientInfo | None:
    return _clients.get(prefix)


def clear() -> None:
    _types.clear()
    _clients.clear()

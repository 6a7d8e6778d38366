"""API keys: ``nk_<prefix>_<secret>``. The prefix finds the client; only a hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from django.db import transaction

from notifications.models import ALL_SCOPES, ApiClient
from notifications.services import catalog
from notifications.services.catalog import ClientInfo

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe; a slow one would tax every request.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "nk" or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1], parts[2]


def authenticate_key(key: str) -> ClientInfo | None:
    parts = split_key(key)
    if parts is None:
        return None
    client = catalog.get_client_by_prefix(parts[0])
    if client is None or not hmac.compare_digest(client.key_hash, hash_key(key)):
        return None
    return client


@dataclass(frozen=True)
class IssuedKey:
    client: ApiClient
    key: str  # shown once; never stored


def create_api_client(
    name: str,
    *,
    allowed_types: list[str],
    may_send_critical: bool = False,
    scopes: list[str] | None = None,
    key: str | None = None,
) -> IssuedKey:
    """Create a client and its key. ``key`` is only for fixed demo keys; normally it is generated."""
    scopes = list(scopes if scopes is not None else ALL_SCOPES)
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    if key is None:
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
        key = f"nk_{prefix}_{secrets.token_urlsafe(32)}"
    parts = split_key(key)
    if parts is None:
        raise ValueError("API keys look like nk_<8 characters>_<secret>")
    with transaction.atomic():
        client = ApiClient.objects.create(
            name=name,
            key_prefix=parts[0],
            key_hash=hash_key(key),
            allowed_types=allowed_types,
            may_send_critical=may_send_critical,
            scopes=scopes,
        )
    return IssuedKey(client=client, key=key)

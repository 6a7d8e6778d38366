"""API keys: ``nk_<prefix>_<secret>``. The prefix finds the client; only a hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from django.db import transaction

from notifications import rules
from notifications.errors import InvalidRequest, Problem
from notifications.models import ALL_SCOPES, DEFAULT_SCOPES, ApiClient, NotificationType
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


def clean_client_fields(
    *, name: str, allowed_types: list[str], scopes: list[str] | None, exclude_id: int | None = None
) -> dict:
    """An API client's settings checked by the shared rules; raises InvalidRequest naming
    every bad field. Used by the admin, the command and this service alike."""
    problems = []
    cleaned: dict = {}
    name = (name or "").strip()
    if not name or len(name) > 100:
        problems.append(Problem("name", "invalid_name", "must be 1-100 characters"))
    elif ApiClient.objects.filter(name=name).exclude(id=exclude_id).exists():
        problems.append(Problem("name", "duplicate_name", f"an API client named {name!r} already exists"))
    cleaned["name"] = name
    known_types = set(NotificationType.objects.values_list("key", flat=True))
    try:
        cleaned["allowed_types"] = rules.allowed_types(allowed_types or [], known_types)
    except rules.RuleViolation as violation:
        problems.append(Problem("allowed_types", violation.code, violation.message))
    try:
        cleaned["scopes"] = rules.scopes(DEFAULT_SCOPES if scopes is None else scopes, ALL_SCOPES)
    except rules.RuleViolation as violation:
        problems.append(Problem("scopes", violation.code, violation.message))
    if problems:
        raise InvalidRequest.of(problems)
    return cleaned


def create_api_client(
    name: str,
    *,
    allowed_types: list[str],
    may_send_critical: bool = False,
    scopes: list[str] | None = None,
    key: str | None = None,
) -> IssuedKey:
    """Create a client and its key. ``key`` is only for fixed demo keys; normally it is generated."""
    cleaned = clean_client_fields(name=name, allowed_types=allowed_types, scopes=scopes)
    if key is None:
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
        key = f"nk_{prefix}_{secrets.token_urlsafe(32)}"
    parts = split_key(key)
    if parts is None:
        raise InvalidRequest.field("key", "invalid_key", "API keys look like nk_<8 characters>_<secret>")
    with transaction.atomic():
        client = ApiClient.objects.create(
            key_prefix=parts[0], key_hash=hash_key(key), may_send_critical=may_send_critical, **cleaned
        )
    return IssuedKey(client=client, key=key)

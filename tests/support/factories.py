"""Small builders for test data, going through the same services the API uses."""

from __future__ import annotations

import itertools
import uuid

from config.sharding import shard_for_user
from notifications.schemas import RecipientRequest
from notifications.services.api_keys import create_api_client
from notifications.services.recipients import put_recipient

_counter = itertools.count()


def user_on(alias: str, prefix: str = "user") -> str:
    """A fresh user id whose bucket maps to shard ``alias``."""
    while True:
        candidate = f"{prefix}-{next(_counter)}"
        if shard_for_user(candidate) == alias:
            return candidate


def make_recipient(user_id: str, **fields):
    contact = {"email": f"{user_id}@example.com", "phone": "+14155550123"}
    contact.update(fields)
    recipient, _ = put_recipient(user_id, RecipientRequest(**contact))
    return recipient


def make_key(name: str | None = None, *, types=("*",), critical: bool = True, scopes=None) -> str:
    issued = create_api_client(
        name or f"client-{uuid.uuid4().hex[:8]}", allowed_types=list(types), may_send_critical=critical, scopes=scopes
    )
    return issued.key


def send_body(user_id: str, **overrides) -> dict:
    body = {
        "user_id": user_id,
        "type": "order_shipped",
        "data": {"name": "Ada", "order_id": "A-100"},
        "idempotency_key": f"key-{uuid.uuid4().hex}",
    }
    body.update(overrides)
    return body

"""Small builders for test data, going through the same services the API uses."""

from __future__ import annotations

import itertools
import uuid

from django.utils import timezone

from config.bulk import insert_rows
from config.sharding import new_id_for_user, shard_for_user
from delivery.models import Delivery, DeliveryStatus
from delivery.services.records import PlannedDelivery, delivery_rows
from notifications.services.api_keys import create_api_client
from notifications.services.recipients import clean_contact, put_recipient

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
    recipient, _ = put_recipient(user_id, clean_contact(contact))
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


def make_delivery(alias: str, channel: str = "email", user_id: str | None = None, priority: str = "normal", **fields) -> Delivery:
    """A delivery row as the send service writes it (queued and just published unless
    ``fields`` say otherwise)."""
    user_id = user_id or user_on(alias)
    planned = PlannedDelivery(
        id=new_id_for_user(user_id),
        notification_id=new_id_for_user(user_id),
        user_id=user_id,
        channel=channel,
        priority=priority,
        status=fields.pop("status", DeliveryStatus.QUEUED),
        address="x@example.com" if channel == "email" else "",
        payload={"subject": "s", "text": "t"},
        next_attempt_at=fields.pop("next_attempt_at", None),
    )
    insert_rows(alias, [delivery_rows([planned], timezone.now())])
    if fields:
        Delivery.objects.using(alias).filter(id=planned.id).update(**fields)
    return Delivery.objects.using(alias).get(id=planned.id)


def reload(delivery: Delivery) -> Delivery:
    return Delivery.objects.using(delivery._state.db).get(id=delivery.id)

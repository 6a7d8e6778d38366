"""Recipients (how to reach a user) and their devices, on the user's shard."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.sharding import shard_for_user
from delivery.services.devices import device_document, list_devices
from notifications.models import Recipient
from notifications.schemas import RecipientRequest


def put_recipient(user_id: str, request: RecipientRequest) -> tuple[Recipient, bool]:
    """Replace the contact record of ``user_id`` (fields left out are cleared); returns (row, created)."""
    alias = shard_for_user(user_id)
    now = timezone.now()
    fields = {
        "email": request.email or "",
        "email_verified": request.email_verified,
        "phone": request.phone or "",
        "phone_verified": request.phone_verified,
        "locale": request.locale or "",
        "timezone": request.timezone or "",
    }
    for _ in range(2):
        try:
            with transaction.atomic(using=alias):
                recipient = Recipient.objects.using(alias).select_for_update().filter(user_id=user_id).first()
                if recipient is None:
                    recipient = Recipient(user_id=user_id, created_at=now, updated_at=now, **fields)
                    recipient.save(using=alias, force_insert=True)
                    return recipient, True
                if fields["email"] != recipient.email:
                    recipient.email_bounced = False  # a new address has not bounced
                for name, value in fields.items():
                    setattr(recipient, name, value)
                recipient.updated_at = now
                recipient.save(using=alias)
                return recipient, False
        except IntegrityError:
            continue  # created concurrently; the second pass updates it
    raise RuntimeError("recipient upsert kept conflicting")  # pragma: no cover


def get_recipient(user_id: str) -> Recipient | None:
    return Recipient.objects.for_user(user_id).filter(user_id=user_id).first()


def recipient_document(recipient: Recipient) -> dict[str, Any]:
    return {
        "user_id": recipient.user_id,
        "email": recipient.email,
        "email_verified": recipient.email_verified,
        "email_bounced": recipient.email_bounced,
        "phone": recipient.phone,
        "phone_verified": recipient.phone_verified,
        "locale": recipient.locale,
        "timezone": recipient.timezone,
        "created_at": recipient.created_at,
        "updated_at": recipient.updated_at,
        "devices": [device_document(device) for device in list_devices(recipient.user_id)],
    }

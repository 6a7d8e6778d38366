"""Push devices of a user: register (or refresh), list, remove."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.sharding import new_id_for_user, shard_for_user
from delivery.models import Device


def register_device(user_id: str, *, platform: str, token: str) -> tuple[Device, bool]:
    """Store a device token for ``user_id``; re-registering refreshes and reactivates it."""
    alias = shard_for_user(user_id)
    now = timezone.now()
    for _ in range(2):
        existing = Device.objects.using(alias).filter(user_id=user_id, token=token).first()
        if existing is not None:
            existing.platform = platform
            existing.active = True
            existing.deactivated_reason = ""
            existing.last_seen_at = now
            existing.updated_at = now
            existing.save(using=alias, update_fields=["platform", "active", "deactivated_reason", "last_seen_at", "updated_at"])
            return existing, False
        try:
            with transaction.atomic(using=alias):
                device = Device(
                    id=new_id_for_user(user_id),
                    user_id=user_id,
                    platform=platform,
                    token=token,
                    created_at=now,
                    updated_at=now,
                    last_seen_at=now,
                )
                device.save(using=alias, force_insert=True)
                return device, True
        except IntegrityError:
            continue  # registered concurrently: refresh the row that won
    raise RuntimeError("device registration kept conflicting")  # pragma: no cover


def device_document(device: Device) -> dict:
    """A device as the API shows it: the token itself never leaves the service."""
    return {
        "id": device.id,
        "platform": device.platform,
        "token_preview": device.token_preview,
        "active": device.active,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
    }


def list_devices(user_id: str) -> list[Device]:
    return list(Device.objects.for_user(user_id).filter(user_id=user_id).order_by("created_at"))


def remove_device(user_id: str, *, token: str) -> bool:
    deleted, _ = Device.objects.for_user(user_id).filter(user_id=user_id, token=token).delete()
    return bool(deleted)

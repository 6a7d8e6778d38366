"""Push devices of a user: register (or refresh), list, deactivate, remove.

A token belongs to one user at a time: registering it for a user deactivates it for anyone
else who had it (a phone changing hands, a shared tablet), on whichever shard they live.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.sharding import new_id_for_user, shard_aliases, shard_for_user
from delivery.models import Device

# Printable ASCII without spaces: FCM, APNs and web-push tokens are all of this form; a NUL
# or a control character would not even be storable in PostgreSQL text.
TOKEN_PATTERN = re.compile(r"^[!-~]{1,2048}$")
MOVED_TO_ANOTHER_USER = "moved_to_another_user"


class InvalidDeviceToken(ValueError):
    code = "invalid_token"


def check_token(token: str) -> str:
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise InvalidDeviceToken("must be 1-2048 printable characters without spaces or control characters")
    return token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def register_device(user_id: str, *, platform: str, token: str) -> tuple[Device, bool]:
    """Store a device token for ``user_id``; re-registering refreshes and reactivates it."""
    check_token(token)
    if platform not in Device.Platform.values:
        raise InvalidDeviceToken(f"platform must be one of {', '.join(Device.Platform.values)}")
    alias = shard_for_user(user_id)
    digest = token_hash(token)
    now = timezone.now()
    device = created = None
    for _ in range(2):
        existing = Device.objects.using(alias).filter(user_id=user_id, token_hash=digest).first()
        if existing is not None:
            existing.platform = platform
            existing.active = True
            existing.deactivated_reason = ""
            existing.consecutive_failures = 0  # the app just proved the token alive
            existing.last_seen_at = now
            existing.updated_at = now
            existing.save(
                using=alias,
                update_fields=["platform", "active", "deactivated_reason", "consecutive_failures", "last_seen_at", "updated_at"],
            )
            device, created = existing, False
            break
        try:
            with transaction.atomic(using=alias):
                device = Device(
                    id=new_id_for_user(user_id),
                    user_id=user_id,
                    platform=platform,
                    token=token,
                    token_hash=digest,
                    created_at=now,
                    updated_at=now,
                    last_seen_at=now,
                )
                device.save(using=alias, force_insert=True)
                created = True
                break
        except IntegrityError:
            continue  # registered concurrently: refresh the row that won
    if device is None:
        raise RuntimeError("device registration kept conflicting")  # pragma: no cover
    _release_from_other_users(digest, user_id, now)
    return device, created


def _release_from_other_users(digest: str, user_id: str, now) -> int:
    """Deactivate the token for every other user, on every shard (registrations are rare
    next to sends; the token hash is indexed)."""
    released = 0
    for alias in shard_aliases():
        released += (
            Device.objects.using(alias)
            .filter(token_hash=digest, active=True)
            .exclude(user_id=user_id)
            .update(active=False, deactivated_reason=MOVED_TO_ANOTHER_USER, updated_at=now)
        )
    return released


def deactivate_tokens(alias: str, reasons: dict[str, str]) -> int:
    """Deactivate the devices of these tokens on ``alias``, each with its reason (the push
    provider said the token is unregistered or invalid)."""
    now = timezone.now()
    changed = 0
    for reason in set(reasons.values()):
        hashes = [token_hash(token) for token, why in reasons.items() if why == reason]
        changed += (
            Device.objects.using(alias)
            .filter(token_hash__in=hashes, active=True)
            .update(active=False, deactivated_reason=reason, updated_at=now)
        )
    return changed


def count_token_failures(alias: str, *, failing: set[str], working: set[str]) -> None:
    """One more failed send in a row for ``failing`` tokens; ``working`` ones start over
    (``prune_devices`` removes tokens that keep failing)."""
    if failing:
        Device.objects.using(alias).filter(token_hash__in=[token_hash(t) for t in failing], active=True).update(
            consecutive_failures=F("consecutive_failures") + 1
        )
    if working:
        Device.objects.using(alias).filter(
            token_hash__in=[token_hash(t) for t in working], consecutive_failures__gt=0
        ).update(consecutive_failures=0)


def prune_devices(*, unseen_days: int, max_failures: int, dry_run: bool = False) -> dict[str, int]:
    """Delete, on every shard, the devices not seen (registered or refreshed) for
    ``unseen_days`` and those whose last ``max_failures`` sends all failed; counts per cause
    (a device matching both counts as unseen)."""
    cutoff = timezone.now() - timedelta(days=unseen_days)
    counts = {"unseen": 0, "failing": 0}
    for alias in shard_aliases():
        devices = Device.objects.using(alias)
        unseen = devices.filter(last_seen_at__lt=cutoff)
        failing = devices.filter(consecutive_failures__gte=max_failures).exclude(last_seen_at__lt=cutoff)
        if dry_run:
            counts["unseen"] += unseen.count()
            counts["failing"] += failing.count()
            continue
        with transaction.atomic(using=alias):
            counts["unseen"] += unseen.delete()[0]
            counts["failing"] += failing.delete()[0]
    return counts


def device_document(device: Device) -> dict:
    """A device as the API shows it: the token itself never leaves the service."""
    return {
        "id": device.id,
        "platform": device.platform,
        "token_preview": device.token_preview,
        "active": device.active,
        "deactivated_reason": device.deactivated_reason or None,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
    }


def list_devices(user_id: str) -> list[Device]:
    return list(Device.objects.for_user(user_id).filter(user_id=user_id).order_by("created_at"))


def remove_device(user_id: str, *, token: str) -> bool:
    deleted, _ = Device.objects.for_user(user_id).filter(user_id=user_id, token_hash=token_hash(token)).delete()
    return bool(deleted)

"""Deleting notifications together with what they produced.

A notification's deliveries and inbox item live on its shard and point at it by id only (no
foreign keys across the ORM's back), so deleting the notification alone would leave
deliveries a worker still sends and an inbox entry the user still sees. This service deletes
all three in one transaction per shard.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction

from config.sharding import parse_routable_id, shard_for_id
from delivery.models import Delivery
from notifications.models import InboxItem, Notification
from notifications.services import inbox


def delete_notifications(notification_ids: Iterable[uuid.UUID | str]) -> int:
    """Delete these notifications, their deliveries and their inbox items; returns how many
    notifications were deleted. Ids that are not ours are ignored."""
    by_shard: dict[str, list[uuid.UUID]] = defaultdict(list)
    for raw in notification_ids:
        notification_id = parse_routable_id(str(raw))
        if notification_id is not None:
            by_shard[shard_for_id(notification_id)].append(notification_id)
    deleted = 0
    for alias, ids in by_shard.items():
        with transaction.atomic(using=alias):
            # Lock the notifications first so a concurrent delete of the same rows waits.
            found = list(Notification.objects.using(alias).select_for_update().filter(id__in=ids).values_list("id", flat=True))
            if not found:
                continue
            Delivery.objects.using(alias).filter(notification_id__in=found).delete()
            inbox.forget_unread(alias, found)
            InboxItem.objects.using(alias).filter(notification_id__in=found).delete()
            deleted += Notification.objects.using(alias).filter(id__in=found).delete()[0]
    return deleted

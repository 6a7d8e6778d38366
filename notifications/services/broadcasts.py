"""Broadcasts: in-app notifications for everyone, one row however many users (fan-out on
read). The inbox merges the active ones with the user's own items by id (both UUIDv7, so by
time); a user's state of a broadcast is written only when they act on it.

Active: ``starts_at`` passed and ``ends_at`` not yet. There are few at a time, so the inbox
reads them all (one query on the global database) and the user's states of them (one query on
the user's shard).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.sharding import new_id, shard_for_user
from delivery.providers.inapp import BROADCAST_GROUP, created_at
from notifications.models import Broadcast, BroadcastState, Category

_ACTIVE_LIMIT = 200  # more active broadcasts than this would be a campaign, not a banner


@dataclass(frozen=True)
class State:
    seen: bool = False
    read: bool = False
    archived: bool = False


def create(
    *, title: str, body: str = "", action_url: str = "", category: str = Category.SYSTEM, sender: str = "",
    starts_at: datetime | None = None, ends_at: datetime | None = None,
) -> Broadcast:  # fmt: skip
    """Store a broadcast and, if it is active now, publish it to every live connection."""
    now = timezone.now()
    broadcast = Broadcast.objects.create(
        id=new_id(0), title=title[:500], body=body, action_url=action_url[:500], category=category, sender=sender,
        starts_at=starts_at or now, ends_at=ends_at, created_at=now,
    )  # fmt: skip
    if broadcast.starts_at <= now:
        frame = {"type": "notification", **{k: v for k, v in document(broadcast, State()).items() if k in _FRAME}}
        transaction.on_commit(lambda: _publish(frame))
    return broadcast


_FRAME = ("id", "title", "body", "action_url", "category", "created_at", "cursor")


def _publish(frame: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(
        BROADCAST_GROUP, {"type": "inbox.notification", "frame": frame, "broadcast": True}
    )


def active(now: datetime | None = None) -> list[Broadcast]:
    now = now or timezone.now()
    query = Broadcast.objects.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now), starts_at__lte=now)
    return list(query.order_by("-id")[:_ACTIVE_LIMIT])


def states(user_id: str, broadcast_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, State]:
    ids = list(broadcast_ids)
    if not ids:
        return {}
    rows = BroadcastState.objects.for_user(user_id).filter(user_id=user_id, broadcast_id__in=ids)
    return {
        row.broadcast_id: State(row.seen_at is not None, row.read_at is not None, row.archived_at is not None)
        for row in rows
    }


def visible(user_id: str) -> list[tuple[Broadcast, State]]:
    """The active broadcasts this user has not archived, newest first, with their state."""
    found = active()
    known = states(user_id, [b.id for b in found])
    return [(b, known.get(b.id, State())) for b in found if not known.get(b.id, State()).archived]


def document(broadcast: Broadcast, state: State) -> dict:
    return {
        "id": str(broadcast.id),
        "type": "broadcast",
        "title": broadcast.title,
        "body": broadcast.body,
        "action_url": broadcast.action_url,
        "category": broadcast.category,
        "created_at": created_at(broadcast.id),
        "cursor": str(broadcast.id),
        "delivered": True,
        "seen": state.seen,
        "read": state.read,
    }


def unread(user_id: str) -> int:
    return sum(1 for _, state in visible(user_id) if not state.read)


def mark(user_id: str, broadcast_ids: Iterable[uuid.UUID], field: str) -> int:
    """Set ``field`` (seen_at, read_at, archived_at) on the user's state of these active
    broadcasts; returns how many changed. Ids that are not active broadcasts are ignored."""
    wanted = set(broadcast_ids)
    targets = [b.id for b in active() if b.id in wanted]
    if not targets:
        return 0
    alias = shard_for_user(user_id)
    now = timezone.now()
    changed = 0
    for broadcast_id in targets:
        with transaction.atomic(using=alias):
            changed += (
                BroadcastState.objects.using(alias)
                .filter(user_id=user_id, broadcast_id=broadcast_id, **{f"{field}__isnull": True})
                .update(**{field: now})
            )
            exists = BroadcastState.objects.using(alias).filter(user_id=user_id, broadcast_id=broadcast_id).exists()
        if not exists:
            try:
                with transaction.atomic(using=alias):
                    BroadcastState.objects.using(alias).create(
                        user_id=user_id, broadcast_id=broadcast_id, **{field: now}
                    )
                changed += 1
            except IntegrityError:  # a concurrent mark created it first: that one counted
                pass
    return changed


def is_active_broadcast(notification_id: uuid.UUID) -> Broadcast | None:
    return next((b for b in active() if b.id == notification_id), None)

"""A user's inbox, as the bell and the end-user API show it: only ever the caller's own rows.

Order and cursors: inbox items are keyed by their notification's id, a UUIDv7 (creation time
first), so "newest first" is ``ORDER BY notification_id DESC`` on the user's index, and the
id of the last item shown is the cursor of the next page. A notification created after the
first page was read has a larger id and never shifts the pages after it.

Unread count: :class:`InboxCounter` holds each user's unread, unarchived items and changes in
the same transaction as the items (the send path adds, marking read and archiving subtract
exactly the rows their UPDATE changed), so it stays exact under concurrent marks and new
arrivals and costs one primary-key read. Items scheduled for later count from the start; the
few not visible yet are subtracted (an index range on ``(user_id, visible_at)``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from config.sharding import shard_for_user
from delivery.providers.inapp import created_at
from delivery.services.confirmations import confirm_delivered
from notifications.models import InboxCounter, InboxItem
from notifications.services import broadcasts

ITEM_FIELDS = (
    "notification_id", "type_key", "category", "title", "body", "action_url", "delivered_at", "seen_at", "read_at",
)  # fmt: skip


class InvalidCursor(ValueError):
    """A cursor or id that is not one of ours (the API answers 400 naming the field)."""


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def parse_id(raw: str | uuid.UUID) -> uuid.UUID:
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except (TypeError, ValueError, AttributeError):
        raise InvalidCursor("is not a notification id") from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def item_document(row: dict) -> dict:
    """An item as the API and the realtime protocol show it (the ``notification`` frame's
    fields, plus its state)."""
    notification_id = row["notification_id"]
    return {
        "id": str(notification_id),
        "type": row["type_key"],
        "title": row["title"],
        "body": row["body"],
        "action_url": row["action_url"],
        "category": row["category"],
        "created_at": created_at(notification_id),
        "cursor": str(notification_id),
        "delivered": row["delivered_at"] is not None,
        "seen": row["seen_at"] is not None,
        "read": row["read_at"] is not None,
    }


def _items(user_id: str):
    return InboxItem.objects.using(shard_for_user(user_id)).filter(user_id=user_id)


def list_page(
    user_id: str, *, before: str | None = None, limit: int = 20, unread_only: bool = False, category: str | None = None
) -> Page:
    """Newest first; ``before`` is the cursor of the last item of the previous page."""
    query = _items(user_id).filter(visible_at__lte=timezone.now(), archived_at__isnull=True)
    if before:
        query = query.filter(notification_id__lt=parse_id(before))
    if unread_only:
        query = query.filter(read_at__isnull=True)
    if category:
        query = query.filter(category=category)
    documents = [item_document(r) for r in query.order_by("-notification_id").values(*ITEM_FIELDS)[: limit + 1]]
    # Broadcasts for everyone, merged by id (both UUIDv7: by time).
    bound = parse_id(before) if before else None
    for broadcast, state in broadcasts.visible(user_id):
        if (bound is None or broadcast.id < bound) and not (unread_only and state.read):
            if category is None or broadcast.category == category:
                documents.append(broadcasts.document(broadcast, state))
    documents.sort(key=lambda d: uuid.UUID(d["id"]), reverse=True)
    more = len(documents) > limit
    documents = documents[:limit]
    return Page(documents, documents[-1]["cursor"] if more and documents else None)


def items_after(user_id: str, cursor: str | None, *, limit: int) -> list[dict]:
    """What a client that saw up to ``cursor`` missed, oldest first (for resume and SSE's
    Last-Event-ID): the newest ``limit`` of them, so a client far behind is brought up to date
    and finds the older ones in the inbox pages. Without a cursor: nothing (a fresh client
    lists the inbox instead)."""
    if not cursor:
        return []
    after = parse_id(cursor)
    rows = (
        _items(user_id)
        .filter(notification_id__gt=after, visible_at__lte=timezone.now(), archived_at__isnull=True)
        .order_by("-notification_id")
        .values(*ITEM_FIELDS)[:limit]
    )
    documents = [item_document(r) for r in rows]
    documents += [broadcasts.document(b, state) for b, state in broadcasts.visible(user_id) if b.id > after]
    documents.sort(key=lambda d: uuid.UUID(d["id"]), reverse=True)
    return documents[:limit][::-1]


def get_item(user_id: str, notification_id: str) -> dict | None:
    """The caller's own item, or None (another user's id is as unknown as a made-up one)."""
    wanted = parse_id(notification_id)
    row = _items(user_id).filter(notification_id=wanted, archived_at__isnull=True).values(*ITEM_FIELDS).first()
    if row:
        return item_document(row)
    return next((broadcasts.document(b, s) for b, s in broadcasts.visible(user_id) if b.id == wanted), None)


def unread_count(user_id: str) -> int:
    alias = shard_for_user(user_id)
    stored = InboxCounter.objects.using(alias).filter(user_id=user_id).values_list("unread", flat=True).first() or 0
    from_broadcasts = broadcasts.unread(user_id)
    if not stored:
        return from_broadcasts
    not_yet_visible = (
        _items(user_id).filter(visible_at__gt=timezone.now(), read_at__isnull=True, archived_at__isnull=True).count()
    )
    return max(stored - not_yet_visible, 0) + from_broadcasts


def add_unread(alias: str, counts: dict[str, int]) -> None:
    """The send path wrote ``counts[user_id]`` new inbox items: count them unread (inside the
    send's transaction). One upsert per user; the same SQL on PostgreSQL and SQLite."""
    if not counts:
        return
    connection = connections[alias]
    table = connection.ops.quote_name(InboxCounter._meta.db_table)
    upsert = f"ON CONFLICT (user_id) DO UPDATE SET unread = {table}.unread + excluded.unread"
    rows = sorted(counts.items())  # one lock order for concurrent sends to the same users
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement for the whole batch: executemany's statement per user doubled
            # PostgreSQL's CPU per bulk notification (docs/benchmarks.md).
            users, unread = zip(*rows, strict=True)
            cursor.execute(
                f"INSERT INTO {table} (user_id, unread) "
                f"SELECT * FROM unnest(%s::text[], %s::int[]) ORDER BY 1 {upsert}",
                [list(users), list(unread)],
            )
        else:
            cursor.executemany(f"INSERT INTO {table} (user_id, unread) VALUES (%s, %s) {upsert}", rows)


def _subtract(alias: str, user_id: str, count: int) -> None:
    if count:
        InboxCounter.objects.using(alias).filter(user_id=user_id).update(unread=F("unread") - count)


def _lock_counter(alias: str, user_id: str) -> None:
    """First in every transaction that marks a user's items: concurrent marks of one user take
    their turn on the counter row instead of locking item rows in different orders, which
    deadlocked (mark-read of some ids against read-all). Sends insert new items and upsert the
    counter last, so they only wait, never close a cycle."""
    list(InboxCounter.objects.using(alias).select_for_update().filter(user_id=user_id).values_list("user_id"))


def _ids(notification_ids: Iterable[str]) -> list[uuid.UUID]:
    return [parse_id(raw) for raw in notification_ids]


def mark_read(user_id: str, notification_ids: Iterable[str]) -> int:
    """Mark the caller's items read; returns how many changed (ids of others are ignored)."""
    ids = _ids(notification_ids)
    alias = shard_for_user(user_id)
    with transaction.atomic(using=alias):
        _lock_counter(alias, user_id)
        # Only rows this UPDATE changes are subtracted: a concurrent mark of the same row
        # waits for this one's lock, then finds it read and changes nothing.
        changed = (
            _items(user_id)
            .filter(notification_id__in=ids, read_at__isnull=True, archived_at__isnull=True)
            .update(read_at=timezone.now())
        )
        _subtract(alias, user_id, changed)
    return changed + broadcasts.mark(user_id, ids, "read_at")


def mark_all_read(user_id: str) -> int:
    alias = shard_for_user(user_id)
    now = timezone.now()
    with transaction.atomic(using=alias):
        _lock_counter(alias, user_id)
        changed = (
            _items(user_id)
            .filter(read_at__isnull=True, archived_at__isnull=True, visible_at__lte=now)
            .update(read_at=now)
        )
        _subtract(alias, user_id, changed)
    unread_broadcasts = [b.id for b, state in broadcasts.visible(user_id) if not state.read]
    return changed + broadcasts.mark(user_id, unread_broadcasts, "read_at")


def mark_seen(user_id: str, notification_ids: Iterable[str]) -> int:
    ids = _ids(notification_ids)
    changed = _items(user_id).filter(notification_id__in=ids, seen_at__isnull=True).update(seen_at=timezone.now())
    return changed + broadcasts.mark(user_id, ids, "seen_at")


def mark_delivered(user_id: str, notification_ids: Iterable[str]) -> int:
    """The user's bell or app has them (the provider published them to a live connection, or
    the client acknowledged them)."""
    ids = _ids(notification_ids)
    return (
        _items(user_id).filter(notification_id__in=ids, delivered_at__isnull=True).update(delivered_at=timezone.now())
    )


def acknowledge(user_id: str, notification_ids: Iterable[str]) -> int:
    """The user's bell or app confirms it has these (the protocol's ``ack``): the items are
    delivered, and so are their in-app deliveries (the status API shows ``delivered``). Only
    the caller's own: ids of other users' items change nothing."""
    ids = _ids(notification_ids)
    alias = shard_for_user(user_id)
    own = list(_items(user_id).filter(notification_id__in=ids).values_list("notification_id", flat=True))
    if not own:
        return 0
    mark_delivered(user_id, own)
    return confirm_delivered(alias, "inapp", own)


def archive(user_id: str, notification_ids: Iterable[str]) -> int:
    ids = _ids(notification_ids)
    alias = shard_for_user(user_id)
    now = timezone.now()
    with transaction.atomic(using=alias):
        _lock_counter(alias, user_id)
        query = _items(user_id).filter(notification_id__in=ids, archived_at__isnull=True)
        unread = query.filter(read_at__isnull=True).update(archived_at=now)
        _subtract(alias, user_id, unread)
        changed = unread + query.update(archived_at=now)
    return changed + broadcasts.mark(user_id, ids, "archived_at")


def forget_unread(alias: str, notification_ids: list[uuid.UUID]) -> None:
    """Before deleting these items: take their unread ones off the counters."""
    rows = InboxItem.objects.using(alias).filter(
        notification_id__in=notification_ids, read_at__isnull=True, archived_at__isnull=True
    )
    counts: dict[str, int] = {}
    for user_id in rows.values_list("user_id", flat=True):
        counts[user_id] = counts.get(user_id, 0) + 1
    for user_id, count in counts.items():
        _subtract(alias, user_id, count)

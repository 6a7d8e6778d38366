"""Dead letters: deliveries that ended ``dead_lettered`` (retries exhausted, a provider bug,
every lease lapsed) or ``failed`` (the provider refused them for good), for operators to
list, inspect, replay and purge (``manage.py dlq``, the admin's "Dead letters").

There is no separate dead-letter table: a dead letter is its delivery row, on its user's
shard, so the status API keeps telling the truth and a replay is a status change. Listing
fans out over every shard on purpose (an operator view); each shard reads its rows from a
partial index (``delivery_dead_letter_idx``) newest first and the pages merge.

Purging marks, it does not delete: the row stays (the notification's status still says this
channel failed, and why), its rendered content and address are dropped, and it is no
longer listed or replayable. Deleting would make a failed channel vanish from the status API.
"""

from __future__ import annotations

import heapq
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from config.sharding import USER_ID_PATTERN, parse_routable_id, shard_aliases, shard_for_id, shard_for_user
from delivery.models import Delivery, DeliveryStatus
from delivery.services.replay import requeue

DEAD_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Rows a replay or purge by filter handles per statement (a filter may match a whole outage).
_CHUNK = 1000


class InvalidFilter(ValueError):
    """A filter value that cannot be used; ``field`` names it (as the caller called it)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DeadLetterFilter:
    channel: str | None = None
    provider: str | None = None
    reason: str | None = None
    status: str | None = None  # failed or dead_lettered; both when None
    older_than: timedelta | None = None  # ended (last updated) longer ago than this
    newer_than: timedelta | None = None
    user_id: str | None = None

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())

    def condition(self, now: datetime) -> Q:
        q = Q()
        for name in ("channel", "provider", "reason", "status", "user_id"):
            value = getattr(self, name)
            if value is not None:
                q &= Q(**{name: value})
        if self.older_than is not None:
            q &= Q(updated_at__lt=now - self.older_than)
        if self.newer_than is not None:
            q &= Q(updated_at__gte=now - self.newer_than)
        return q

    def shards(self) -> list[str]:
        """Only the user's shard when the filter names a user."""
        return [shard_for_user(self.user_id)] if self.user_id else shard_aliases()


def parse_age(field: str, value: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w``."""
    match = _AGE.match(value.strip())
    if not match:
        raise InvalidFilter(field, f"{value!r} is not an age such as 30m, 2h, 7d (units s, m, h, d, w)")
    return timedelta(seconds=float(match.group(1)) * _AGE_UNITS[match.group(2)])


def make_filter(
    *,
    channel: str | None = None,
    provider: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    older_than: str | None = None,
    newer_than: str | None = None,
    user_id: str | None = None,
) -> DeadLetterFilter:
    """A filter from text (a command's options, a query string); raises InvalidFilter naming
    the first bad field."""
    if channel is not None and channel not in settings.CHANNELS:
        raise InvalidFilter("channel", f"unknown channel {channel!r}; use {', '.join(settings.CHANNELS)}")
    if status is not None and status not in DEAD_STATUSES:
        raise InvalidFilter("status", f"{status!r} is not a dead-letter status; use {', '.join(DEAD_STATUSES)}")
    for name, value in (("provider", provider), ("reason", reason)):
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
            raise InvalidFilter(name, f"{value!r} is not a {name} name")
    if user_id is not None and not USER_ID_PATTERN.match(user_id):
        raise InvalidFilter("user", f"{user_id!r} is not a user id")
    older = parse_age("older-than", older_than) if older_than is not None else None
    newer = parse_age("newer-than", newer_than) if newer_than is not None else None
    if older is not None and newer is not None and older >= newer:
        raise InvalidFilter("older-than", "must be less than --newer-than, or nothing can match")
    return DeadLetterFilter(channel, provider, reason, status, older, newer, user_id)


def dead_letters(alias: str) -> QuerySet:
    """One shard's dead letters (not purged)."""
    return Delivery.objects.using(alias).filter(status__in=DEAD_STATUSES, purged_at__isnull=True)


def list_dead_letters(where: DeadLetterFilter, *, limit: int = 50, now: datetime | None = None) -> list[Delivery]:
    """The newest ``limit`` dead letters matching ``where``, over every shard it concerns."""
    condition = where.condition(now or timezone.now())
    per_shard = [
        list(dead_letters(alias).filter(condition).order_by("-updated_at", "-id")[:limit]) for alias in where.shards()
    ]
    merged = heapq.merge(*per_shard, key=lambda d: (d.updated_at, d.id), reverse=True)
    return list(merged)[:limit]


def count_dead_letters(where: DeadLetterFilter, *, now: datetime | None = None) -> int:
    condition = where.condition(now or timezone.now())
    return sum(dead_letters(alias).filter(condition).count() for alias in where.shards())


def distinct_values(field: str, *, limit: int = 50) -> list[str]:
    """The providers (or reasons) dead letters have now, over every shard: the admin's
    filter choices."""
    values: set[str] = set()
    for alias in shard_aliases():
        values.update(dead_letters(alias).order_by().values_list(field, flat=True).distinct()[:limit])
    return sorted(v for v in values if v)


def get_dead_letter(raw_id: str) -> Delivery | None:
    """A failed or dead-lettered delivery by id (purged ones too, which say so), or None."""
    delivery_id = parse_routable_id(raw_id)
    if delivery_id is None:
        return None
    return Delivery.objects.using(shard_for_id(delivery_id)).filter(id=delivery_id, status__in=DEAD_STATUSES).first()


@dataclass
class Selection:
    """What an operation by ids or by filter matched, per shard."""

    ids_by_shard: dict[str, list[uuid.UUID]]

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.ids_by_shard.values())

    def ids(self) -> Iterator[uuid.UUID]:
        for ids in self.ids_by_shard.values():
            yield from ids


def select(*, ids: Iterable[str] = (), where: DeadLetterFilter | None = None, now: datetime | None = None) -> Selection:
    """The dead letters named by ``ids`` (unknown or not dead ones are left out) and/or
    matching ``where``; ids outside the filter are left out too."""
    now = now or timezone.now()
    condition = where.condition(now) if where is not None else Q()
    found: dict[str, list[uuid.UUID]] = defaultdict(list)
    ids = list(ids)
    if ids:
        by_shard: dict[str, list[uuid.UUID]] = defaultdict(list)
        for raw in ids:
            parsed = parse_routable_id(raw)
            if parsed is None:
                raise InvalidFilter("ids", f"{raw!r} is not a delivery id")
            by_shard[shard_for_id(parsed)].append(parsed)
        for alias, shard_ids in by_shard.items():
            found[alias] = list(dead_letters(alias).filter(condition, id__in=shard_ids).values_list("id", flat=True))
    elif where is not None:
        for alias in where.shards():
            found[alias] = list(dead_letters(alias).filter(condition).values_list("id", flat=True))
    return Selection({alias: ids for alias, ids in found.items() if ids})


def replay(selection: Selection) -> int:
    """Send the selected dead letters again, published as soon as each shard commits (the
    replay service: attempts start over, so each gets its channel's whole retry policy)."""
    replayed = 0
    for ids in selection.ids_by_shard.values():
        for start in range(0, len(ids), _CHUNK):
            replayed += requeue(ids[start : start + _CHUNK])
    return replayed


def purge(selection: Selection, *, now: datetime | None = None) -> int:
    """Take the selected dead letters out of the dead letters for good: kept as failed rows
    for the notification's history, without their content or address."""
    now = now or timezone.now()
    purged = 0
    for alias, ids in selection.ids_by_shard.items():
        for start in range(0, len(ids), _CHUNK):
            purged += (
                dead_letters(alias)
                .filter(id__in=ids[start : start + _CHUNK])
                .update(purged_at=now, payload={}, address="", updated_at=now)
            )
    return purged


def masked_address(address: str) -> str:
    """Enough of an address to recognise it, not to read it (operators' screens get shared)."""
    if not address:
        return ""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{address[:3]}***{address[-2:]}" if len(address) > 6 else "***"

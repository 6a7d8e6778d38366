"""Claiming deliveries: a lease stamped by one conditional UPDATE, so a second claimer gets
nothing and a task that runs twice sends nothing twice.

The claim also marks the rows handed over (``handed_at``): from here on a provider may have
them. If the worker dies before recording the outcome, whoever takes the rows back after
the lease flags them ``possibly_duplicated``.

Each lease names its holder (``host:pid``). A worker process that starts — the pool's
replacement for a child that was killed, or a restarted worker — ends the leases of dead
processes on its host at once, so their deliveries go out again within seconds rather than
when the lease runs out.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.sharding import shard_aliases
from delivery.models import Delivery, DeliveryStatus, lapsed_after_handoff


@dataclass(slots=True)
class Claimed:
    """What sending needs of a claimed delivery (a Delivery instance has the same names)."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    priority: str
    address: str
    payload: dict[str, Any]
    attempts: int


def _claimable(now: datetime) -> Q:
    return (
        Q(status=DeliveryStatus.QUEUED)
        | Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def release_leases_of_dead_processes(*, now: datetime | None = None) -> int:
    """End the leases held by processes of this host that no longer exist; the sweep hands
    their deliveries out again on its next run (flagged ``possibly_duplicated``)."""
    now = now or timezone.now()
    prefix = f"{socket.gethostname()}:"
    released = 0
    for alias in shard_aliases():
        held = Delivery.objects.using(alias).filter(
            status=DeliveryStatus.SENDING, lease_owner__startswith=prefix, lease_expires_at__gt=now
        )
        owners = set(held.values_list("lease_owner", flat=True))
        dead = [owner for owner in owners if owner.rsplit(":", 1)[1].isdigit() and not _process_alive(int(owner.rsplit(":", 1)[1]))]
        if dead:
            released += held.filter(lease_owner__in=dead).update(lease_expires_at=now)
    return released


def claim(alias: str, delivery_ids: Sequence[uuid.UUID | str]) -> tuple[uuid.UUID, list[Delivery]]:
    """Take the lease on those of ``delivery_ids`` nobody else holds; returns (token, rows)."""
    now = timezone.now()
    token = uuid.uuid4()
    claimed = (
        Delivery.objects.using(alias)
        .filter(_claimable(now), id__in=delivery_ids)
        .update(
            status=DeliveryStatus.SENDING,
            lease_token=token,
            lease_expires_at=_lease_until(now),
            lease_owner=lease_owner(),
            republish_at=None,
            possibly_duplicated=lapsed_after_handoff(),
            handed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return token, []
    return token, list(Delivery.objects.using(alias).filter(id__in=delivery_ids, lease_token=token))


_CLAIM_DUE = """
UPDATE {table} SET status = %s, lease_token = %s, lease_expires_at = %s, lease_owner = %s,
       republish_at = NULL, handed_at = %s, attempts = attempts + 1, updated_at = %s
WHERE id IN (
    SELECT id FROM {table}
    WHERE status = %s AND channel = %s AND priority = %s
    ORDER BY published_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, notification_id, user_id, channel, priority, address, payload, attempts
"""


def claim_due(alias: str, channel: str, priority: str, limit: int) -> tuple[uuid.UUID, list[Claimed]]:
    """Take the lease on up to ``limit`` of the oldest queued deliveries of one queue. Rows
    another drain is claiming right now are skipped, not waited for (SKIP LOCKED).

    On PostgreSQL one statement (select, lock, update, return): a drain runs this every
    time it looks for work, and the ORM's three statements and query building cost more
    than the rows."""
    now = timezone.now()
    token = uuid.uuid4()
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return _claim_due_portably(alias, channel, priority, limit)
    sql = _CLAIM_DUE.format(table=connection.ops.quote_name(Delivery._meta.db_table))
    params = [
        DeliveryStatus.SENDING, token, _lease_until(now), lease_owner(), now, now,
        DeliveryStatus.QUEUED, channel, priority, limit,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # Django has psycopg hand jsonb over as text (JSONField decodes it); so do we.
    return token, [Claimed(*row[:6], orjson.loads(row[6]) if isinstance(row[6], str) else row[6], row[7]) for row in rows]


def _claim_due_portably(alias: str, channel: str, priority: str, limit: int) -> tuple[uuid.UUID, list[Delivery]]:
    """SQLite (the embedded profile): one writer at a time, so select then claim."""
    with transaction.atomic(using=alias):
        ids = list(
            Delivery.objects.using(alias)
            .filter(status=DeliveryStatus.QUEUED, channel=channel, priority=priority)
            .order_by("published_at")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return uuid.uuid4(), []
        return claim(alias, ids)

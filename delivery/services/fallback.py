"""Fallback deliveries: a channel standing in for another one that failed for good.

The send pipeline plans them when it accepts a notification (``notifications`` knows the
type's fallback chain; ``delivery`` imports no other app): a fallback is a delivery row in
``standby`` with its own rendered payload and address, whose ``fallback_of`` names the
delivery it backs up on the same shard. So nothing here needs to look anything up elsewhere:

* the dispatcher **activates** the standbys of deliveries it just failed permanently (a
  provider's permanent refusal: bounced, invalid number, every device token invalid) or
  skipped for having no device, in the same transaction, and publishes them at once. A
  fallback is tried once: it is activated once, and its own failure only moves on to the
  next standby of the chain;
* the sweep **ends** the standbys nobody will need (``skipped``, ``fallback_not_needed``):
  those behind a delivery that was sent, or that ended without a failure (itself a standby
  ended, or purged from the dead letters).

An in-app delivery to a user who is not connected is not a failure (the item waits in the
inbox), but it is the one case where the standby behind it (e.g. ``["inapp", "push"]``) is
wanted now: the in-app provider calls :func:`activate_behind_offline`.

A delivery dead-lettered by exhausted retries does not activate its fallback: that is the
provider failing, not the recipient, and an operator may replay it; its standby waits.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from config.sharding import shard_for_id
from delivery.models import SUCCESS_STATUSES, Delivery, DeliveryStatus
from delivery.services.publishing import publish_deliveries

logger = logging.getLogger(__name__)

FALLBACK = "fallback"
FALLBACK_NOT_NEEDED = "fallback_not_needed"
# Skip reasons of the dispatcher that are a permanent failure for the user.
ACTIVATING_SKIPS = frozenset({"no_devices"})


def activate(alias: str, failed_ids: Collection[uuid.UUID] | None, *, now: datetime | None = None) -> int:
    """Queue the standbys of ``failed_ids`` (None: of any delivery) whose delivery did end
    failed (or skipped for a reason in ACTIVATING_SKIPS) and publish them after commit. The
    dispatcher calls it inside the transaction that recorded the failure, so no reader sees
    the failure without its fallback; the sweep calls it for every delivery, as a backstop."""
    if failed_ids is not None and not failed_ids:
        return 0
    now = now or timezone.now()
    failed = Delivery.objects.using(alias).filter(
        Q(status=DeliveryStatus.FAILED) | Q(status=DeliveryStatus.SKIPPED, reason__in=ACTIVATING_SKIPS),
        id=OuterRef("fallback_of"),
    )
    with transaction.atomic(using=alias):
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update(skip_locked=failed_ids is None)  # the sweep never waits on a dispatcher
            .filter(Exists(failed), status=DeliveryStatus.STANDBY)
            .filter(Q() if failed_ids is None else Q(fallback_of__in=list(failed_ids)))
            .values_list("id", "channel", "priority")
        )
        _queue(alias, rows, now)
    return len(rows)


def activate_behind_offline(delivery_ids: Collection[uuid.UUID], *, now: datetime | None = None) -> int:
    """Queue the standbys behind in-app deliveries whose users are offline (the type's chain
    starts with in-app, so push or email stands in while the bell is closed). The standby
    exists only if the preferences allowed that channel when the notification was accepted."""
    now = now or timezone.now()
    by_shard: dict[str, list[uuid.UUID]] = defaultdict(list)
    for delivery_id in delivery_ids:
        by_shard[shard_for_id(delivery_id)].append(delivery_id)
    activated = 0
    for alias, ids in by_shard.items():
        with transaction.atomic(using=alias):
            rows = list(
                Delivery.objects.using(alias)
                .select_for_update()
                .filter(fallback_of__in=ids, status=DeliveryStatus.STANDBY)
                .values_list("id", "channel", "priority")
            )
            _queue(alias, rows, now)
        activated += len(rows)
    return activated


def _queue(alias: str, rows: list[tuple], now: datetime) -> None:
    """Inside the caller's transaction: standbys become queued fallbacks, published on commit."""
    if not rows:
        return
    Delivery.objects.using(alias).filter(id__in=[row[0] for row in rows]).update(
        status=DeliveryStatus.QUEUED,
        reason=FALLBACK,
        next_attempt_at=None,
        published_at=now,
        republish_at=now + timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS),
        updated_at=now,
    )
    # A failed publish marks the rows unpublished; the sweep publishes them within a second.
    transaction.on_commit(lambda: publish_deliveries(alias, rows), using=alias)
    logger.info("%d fallback deliveries activated on %s", len(rows), alias)


def end_unneeded(alias: str, *, now: datetime | None = None) -> int:
    """Standbys whose delivery was sent (or ended without failing) will never be needed."""
    now = now or timezone.now()
    settled = Delivery.objects.using(alias).filter(
        Q(status__in=[*SUCCESS_STATUSES, DeliveryStatus.SKIPPED]) & ~Q(reason__in=ACTIVATING_SKIPS)
        | Q(purged_at__isnull=False),
        id=OuterRef("fallback_of"),
    )
    return (
        Delivery.objects.using(alias)
        .filter(Exists(settled), status=DeliveryStatus.STANDBY)
        .update(status=DeliveryStatus.SKIPPED, reason=FALLBACK_NOT_NEEDED, updated_at=now)
    )

"""The outbox sweep: publish every delivery that is due and not on its way.

Runs every SWEEP_INTERVAL_SECONDS from beat. It is what makes a 202 a promise: whatever
happened to the broker message (never published, lost by the broker, dropped by a worker
that failed before claiming, or its worker killed mid-send), the delivery row is still there
and the sweep hands it out again. Running it twice at once is harmless: a delivery is sent
only by whoever claims it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.sharding import shard_aliases
from delivery import retry
from delivery.models import Delivery, DeliveryStatus
from delivery.services.publishing import publish_deliveries

logger = logging.getLogger(__name__)

LEASE_EXPIRED = "lease_expired"


@dataclass
class SweepReport:
    republished: dict[str, int] = field(default_factory=dict)  # per shard
    dead_lettered: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.republished.values())


def _due(now: datetime) -> Q:
    return (
        # scheduled sends whose time came, and retries whose backoff elapsed
        Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        # queued and not picked up by its deadline (or its publish failed: deadline now)
        | Q(status=DeliveryStatus.QUEUED, republish_at__lte=now)
        # claimed by a worker that did not finish within its lease (killed, hung)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )


def _republish_spacing(age_seconds: float) -> float:
    """Wait as long again as the delivery has been queued (doubling), within bounds."""
    spacing = settings.STUCK_QUEUED_AFTER_SECONDS
    cap = settings.REPUBLISH_MAX_SPACING_SECONDS
    while spacing < age_seconds and spacing < cap:
        spacing *= 2
    return min(spacing, cap)


def dead_letter_exhausted_leases(alias: str, now: datetime) -> int:
    """A delivery whose every attempt ended with its worker gone (it crashes or hangs the
    worker) stops being handed out: dead-lettered, visible and replayable."""
    total = 0
    for channel in settings.CHANNELS:
        total += (
            Delivery.objects.using(alias)
            .filter(
                status=DeliveryStatus.SENDING,
                channel=channel,
                lease_expires_at__lt=now,
                attempts__gte=retry.max_attempts(channel),
            )
            .update(
                status=DeliveryStatus.DEAD_LETTERED,
                reason=LEASE_EXPIRED,
                last_error="no worker finished this delivery within its lease, on every attempt",
                lease_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    return total


def sweep_shard(alias: str, *, limit: int | None = None) -> int:
    now = timezone.now()
    limit = limit or settings.SWEEP_BATCH_LIMIT
    with transaction.atomic(using=alias):
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update(skip_locked=True)
            .filter(_due(now))
            .values_list("id", "channel", "priority", "created_at")[:limit]
        )
        if not rows:
            return 0
        by_spacing: dict[float, list] = defaultdict(list)
        for delivery_id, _, _, created_at in rows:
            by_spacing[_republish_spacing((now - created_at).total_seconds())].append(delivery_id)
        for spacing, ids in by_spacing.items():
            Delivery.objects.using(alias).filter(id__in=ids).update(
                status=DeliveryStatus.QUEUED,
                published_at=now,
                republish_at=now + timedelta(seconds=spacing),
                lease_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
        to_publish = [(delivery_id, channel, priority) for delivery_id, channel, priority, _ in rows]
        transaction.on_commit(lambda: publish_deliveries(alias, to_publish), using=alias)
    logger.info("sweep published %d deliveries on %s", len(rows), alias)
    return len(rows)


def sweep() -> SweepReport:
    report = SweepReport()
    now = timezone.now()
    for alias in shard_aliases():
        try:
            report.dead_lettered[alias] = dead_letter_exhausted_leases(alias, now)
            report.republished[alias] = sweep_shard(alias)
        except Exception:
            # One shard being down must not stop the others from being swept.
            logger.error("sweep of %s failed", alias, exc_info=True)
    return report


def republish_all_queued() -> int:
    """After a restart of the in-memory broker (embedded profile) nothing queued survives in
    it: make every queued delivery due at once rather than at its republish deadline."""
    now = timezone.now()
    return sum(
        Delivery.objects.using(alias).filter(status=DeliveryStatus.QUEUED).update(republish_at=now)
        for alias in shard_aliases()
    )

"""The outbox sweep: publish every delivery that is due and not on its way.

Runs every SWEEP_INTERVAL_SECONDS from beat. It is what makes a 202 a promise: whatever
happened to the broker message (never published, lost by the broker, or its worker killed
mid-send), the delivery row is still there and the sweep hands it out again. Running it
twice at once is harmless: a delivery is sent only by whoever claims it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.sharding import shard_aliases
from delivery.models import Delivery, DeliveryStatus
from delivery.services.publishing import publish_deliveries

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    republished: dict[str, int] = field(default_factory=dict)  # per shard

    @property
    def total(self) -> int:
        return sum(self.republished.values())


def _due(now) -> Q:
    stuck_before = now - timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS)
    return (
        # scheduled sends whose time came, and retries whose backoff elapsed
        Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        # the publish after commit failed (broker down)
        | Q(status=DeliveryStatus.QUEUED, published_at__isnull=True)
        # published long ago and never picked up: the broker lost the message
        | Q(status=DeliveryStatus.QUEUED, published_at__lt=stuck_before)
        # claimed by a worker that did not finish within its lease (killed, hung)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )


def sweep_shard(alias: str, *, limit: int | None = None) -> int:
    now = timezone.now()
    limit = limit or settings.SWEEP_BATCH_LIMIT
    with transaction.atomic(using=alias):
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update(skip_locked=True)
            .filter(_due(now))
            .values_list("id", "channel", "priority")[:limit]
        )
        if not rows:
            return 0
        Delivery.objects.using(alias).filter(id__in=[row[0] for row in rows]).update(
            status=DeliveryStatus.QUEUED, published_at=now, lease_token=None, lease_expires_at=None, updated_at=now
        )
        transaction.on_commit(lambda: publish_deliveries(alias, rows), using=alias)
    logger.info("sweep published %d deliveries on %s", len(rows), alias)
    return len(rows)


def sweep() -> SweepReport:
    report = SweepReport()
    for alias in shard_aliases():
        try:
            report.republished[alias] = sweep_shard(alias)
        except Exception:
            # One shard being down must not stop the others from being swept.
            logger.exception("sweep of %s failed", alias)
    return report

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

from kombu.exceptions import ChannelError

from config.celery import app as celery_app
from config.queues import delivery_queue
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


def _due(now, empty_queues: set[tuple[str, str]]) -> Q:
    due = (
        # scheduled sends whose time came, and retries whose backoff elapsed
        Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        # the publish after commit failed (broker down)
        | Q(status=DeliveryStatus.QUEUED, published_at__isnull=True)
        # claimed by a worker that did not finish within its lease (killed, hung)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )
    for channel, priority in empty_queues:
        # published long ago, still queued, and its queue is empty: the broker lost it
        due |= Q(status=DeliveryStatus.QUEUED, published_at__lt=_stuck_before(now), channel=channel, priority=priority)
    return due


def _stuck_before(now):
    return now - timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS)


def _has_stuck(alias: str, now) -> bool:
    return (
        Delivery.objects.using(alias)
        .filter(status=DeliveryStatus.QUEUED, published_at__lt=_stuck_before(now))
        .exists()
    )


def empty_delivery_queues() -> set[tuple[str, str]]:
    """(channel, priority) pairs whose broker queue holds nothing.

    A delivery queued long ago is only assumed lost when its queue is empty (e.g. Redis
    restarted without persistence); a long backlog behind stopped workers is not lost, and
    republishing it every few minutes would flood the broker.
    """
    empty = set()
    try:
        with celery_app.connection_for_read() as connection:
            channel = connection.default_channel
            for name in settings.CHANNELS:
                for priority in settings.PRIORITIES:
                    try:
                        _, count, _ = channel.queue_declare(queue=delivery_queue(name, priority), passive=True)
                    except ChannelError:
                        count = 0  # never declared or drained away: nothing waiting
                    if count == 0:
                        empty.add((name, priority))
    except Exception:
        logger.warning("cannot inspect broker queues; lost messages are not looked for this time", exc_info=True)
        return set()
    return empty


def sweep_shard(alias: str, *, empty_queues: set[tuple[str, str]] = frozenset(), limit: int | None = None) -> int:
    now = timezone.now()
    limit = limit or settings.SWEEP_BATCH_LIMIT
    with transaction.atomic(using=alias):
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update(skip_locked=True)
            .filter(_due(now, empty_queues))
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
    now = timezone.now()
    aliases = shard_aliases()
    empty_queues: set[tuple[str, str]] = set()
    try:
        if any(_has_stuck(alias, now) for alias in aliases):
            empty_queues = empty_delivery_queues()
    except Exception:
        logger.exception("looking for stuck deliveries failed")
    for alias in aliases:
        try:
            report.republished[alias] = sweep_shard(alias, empty_queues=empty_queues)
        except Exception:
            # One shard being down must not stop the others from being swept.
            logger.exception("sweep of %s failed", alias)
    return report

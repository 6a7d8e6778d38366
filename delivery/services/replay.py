"""Send again what failed: failed and dead-lettered deliveries go back to the queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.sharding import shard_for_id
from delivery.models import Delivery, DeliveryStatus
from delivery.services.publishing import publish_deliveries

REPLAYABLE = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)


def requeue(delivery_ids: Iterable) -> int:
    """Requeue those of ``delivery_ids`` that failed (on whichever shards they live) and
    publish them as soon as that is committed. Attempts start over, so a replayed delivery
    gets its channel's full retry policy again."""
    by_shard: dict[str, list] = defaultdict(list)
    for delivery_id in delivery_ids:
        by_shard[shard_for_id(delivery_id)].append(delivery_id)
    return sum(_requeue_on(alias, ids) for alias, ids in by_shard.items())


def _requeue_on(alias: str, delivery_ids: list) -> int:
    now = timezone.now()
    with transaction.atomic(using=alias):
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update()
            .filter(id__in=delivery_ids, status__in=REPLAYABLE, purged_at__isnull=True)  # purged: content dropped
            .values_list("id", "channel", "priority")
        )
        if not rows:
            return 0
        Delivery.objects.using(alias).filter(id__in=[row[0] for row in rows]).update(
            status=DeliveryStatus.QUEUED,
            published_at=now,
            republish_at=now + timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS),
            attempts=0,
            next_attempt_at=None,
            reason="",
            updated_at=now,
        )
        # A failed publish marks the rows unpublished; the next sweep (within a second) retries.
        transaction.on_commit(lambda: publish_deliveries(alias, rows), using=alias)
    return len(rows)

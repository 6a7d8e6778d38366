"""Publish delivery tasks to the broker, one task per (channel, priority) batch of IDs."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import Iterable

from django.conf import settings
from django.utils import timezone
from kombu.utils.uuid import uuid as new_task_id

from config.celery import app as celery_app
from config.queues import delivery_queue
from delivery.models import Delivery, DeliveryStatus

logger = logging.getLogger(__name__)

DELIVER_TASK = "delivery.deliver_batch"


def _batches(deliveries: Iterable[tuple[uuid.UUID, str, str]]) -> list[tuple[str, list[str]]]:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for delivery_id, channel, priority in deliveries:
        groups[(channel, priority)].append(str(delivery_id))
    batches = []
    for (channel, priority), ids in groups.items():
        size = settings.DELIVERY_BATCH_SIZE[channel]
        queue = delivery_queue(channel, priority)
        batches.extend((queue, ids[start : start + size]) for start in range(0, len(ids), size))
    return batches


def publish_deliveries(alias: str, deliveries: Iterable[tuple[uuid.UUID, str, str]]) -> int:
    """Publish ``(delivery_id, channel, priority)`` rows of one shard; returns tasks published.

    Runs after the rows are committed, over one producer connection. When the broker cannot
    be reached, the rows not yet published are marked so and the sweep publishes them later;
    the caller never sees the failure (its notifications are safely stored).
    """
    batches = _batches(deliveries)
    if not batches:
        return 0
    amqp = celery_app.amqp
    try:
        with celery_app.producer_or_acquire() as producer, producer.batch():
            # On Redis, kombu buffers these in one pipeline flushed when the batch closes:
            # one round trip for every task of this shard, all or nothing. Celery's lower-level
            # API skips what send_task does per message that we do not need (half its CPU):
            # routing (the queue is explicit), declaring the queue (Redis and memory
            # transports deliver to a queue by name) and per-message retry (a failed flush
            # raises here and the rows go to the sweep).
            for queue, ids in batches:
                message = amqp.create_task_message(
                    new_task_id(), DELIVER_TASK, [ids], {}, argsrepr=f"[{len(ids)} deliveries]", kwargsrepr="{}"
                )
                amqp.send_task_message(producer, DELIVER_TASK, message, queue=queue, declare=[], retry=False)
    except Exception:
        left = [delivery_id for _, ids in batches for delivery_id in ids]
        logger.warning("broker unavailable: %d deliveries on %s left for the sweep", len(left), alias, exc_info=True)
        mark_unpublished(alias, left)
        return 0
    return len(batches)


def mark_unpublished(alias: str, delivery_ids: list[str]) -> None:
    """Hand the rows to the next sweep (within a second) instead of their republish deadline."""
    try:
        Delivery.objects.using(alias).filter(id__in=delivery_ids, status=DeliveryStatus.QUEUED).update(
            published_at=None, republish_at=timezone.now()
        )
    except Exception:
        # The rows keep their republish deadline; the sweep still finds them, later.
        logger.exception("could not mark %d deliveries unpublished on %s", len(delivery_ids), alias)

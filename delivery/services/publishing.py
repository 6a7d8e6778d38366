"""Tell the workers there is work: one "drain" task per (shard, channel, priority) doorbell.

Queued delivery rows are the work; a broker message only says where to look. A worker
running ``delivery.drain(shard, channel, priority)`` claims up to a batch of that queue's
oldest queued rows and sends them together, ringing again when it found a full batch so
another worker process continues in parallel. A single send therefore costs the workers a
share of a batch, not a Celery task of its own (one task per delivery outran the workers
at 60 deliveries/s).

At most one doorbell per (shard, channel, priority) waits in the broker: ringing sets a short-
lived key in Redis and publishes only if the key was not already set; the drain task deletes
the key *before* it claims, so a row committed after the claim always rings again. Without
Redis (embedded profile) every ring publishes.

When the broker cannot be reached, the rows are marked unpublished and the sweep rings for
them within a second; the caller never sees the failure (its notifications are stored).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable

import redis
from django.conf import settings
from django.utils import timezone
from kombu.utils.uuid import uuid as new_task_id

from config.celery import app as celery_app
from config.queues import delivery_queue
from config.redis import get_redis
from delivery.models import Delivery, DeliveryStatus

logger = logging.getLogger(__name__)

DRAIN_TASK = "delivery.drain"
# Rings within this long of one another share one waiting task. Short, so a doorbell whose
# message was lost with a broker that did not lose Redis is rung again soon.
WAKE_TTL_SECONDS = 5

Doorbell = tuple[str, str]  # (channel, priority)


def _wake_key(alias: str, channel: str, priority: str) -> str:
    return f"notify:wake:{alias}:{channel}:{priority}"


def publish_deliveries(alias: str, deliveries: Iterable[tuple[uuid.UUID, str, str]], *, force: bool = False) -> int:
    """Ring for ``(delivery_id, channel, priority)`` rows of one shard, committed and queued;
    returns the number of drain tasks published (``force``: even where a ring is pending)."""
    by_bell: dict[Doorbell, list] = defaultdict(list)
    for delivery_id, channel, priority in deliveries:
        by_bell[(channel, priority)].append(delivery_id)
    if not by_bell:
        return 0
    try:
        return ring(alias, by_bell, force=force)
    except Exception:
        left = [delivery_id for ids in by_bell.values() for delivery_id in ids]
        logger.warning("broker unavailable: %d deliveries on %s left for the sweep", len(left), alias, exc_info=True)
        mark_unpublished(alias, left)
        return 0


def ring(alias: str, bells: Iterable[Doorbell], *, force: bool = False, countdown: float = 0.0) -> int:
    """Publish a drain task for each doorbell not already rung (``force``: every one, e.g. when
    the sweep found its message lost), to run after ``countdown`` seconds (a provider's circuit
    or rate says wait). Raises if the broker cannot be reached."""
    bells = list(bells)
    if not force:
        bells = _not_yet_rung(alias, bells)
    if not bells:
        return 0
    amqp = celery_app.amqp
    with celery_app.producer_or_acquire() as producer, producer.batch():
        # On Redis, kombu buffers these in one pipeline flushed when the batch closes. Celery's
        # lower-level API skips what send_task does per message that we do not need: routing
        # (the queue is explicit), declaring the queue (Redis and memory transports deliver to
        # a queue by name) and per-message retry (a failed flush raises; the sweep rings later).
        for channel, priority in bells:
            message = amqp.create_task_message(
                new_task_id(), DRAIN_TASK, [alias, channel, priority], {}, argsrepr=None, kwargsrepr="{}",
                countdown=countdown or None,
            )
            amqp.send_task_message(
                producer, DRAIN_TASK, message, queue=delivery_queue(channel, priority), declare=[], retry=False
            )
    return len(bells)


def _not_yet_rung(alias: str, bells: list[Doorbell]) -> list[Doorbell]:
    client = get_redis()
    if client is None:
        return bells
    try:
        with client.pipeline(transaction=False) as pipe:
            for channel, priority in bells:
                pipe.set(_wake_key(alias, channel, priority), b"1", nx=True, ex=WAKE_TTL_SECONDS)
            taken = pipe.execute()
    except redis.RedisError:
        return bells  # cannot tell: ring (a duplicate drain claims nothing)
    return [bell for bell, was_set in zip(bells, taken, strict=True) if was_set]


def answer(alias: str, channel: str, priority: str) -> None:
    """A drain found its queue empty: later rings must publish again (it looks once more
    after this, for rows committed while it still held the bell)."""
    client = get_redis()
    if client is None:
        return
    try:
        client.delete(_wake_key(alias, channel, priority), _wake_key(alias, channel, priority) + ":helper")
    except redis.RedisError:
        pass  # the keys expire within WAKE_TTL_SECONDS; the sweep covers the gap


def hold(alias: str, channel: str, priority: str) -> None:
    """A drain goes on after answering (it found late rows): rings need not publish."""
    client = get_redis()
    if client is not None:
        try:
            client.set(_wake_key(alias, channel, priority), b"1", ex=WAKE_TTL_SECONDS)
        except redis.RedisError:
            pass  # rings publish extra drains meanwhile; each claims what it finds


def helper_started(alias: str, channel: str, priority: str) -> None:
    """A drain starts: a waiting helper (if this is it) is no longer waiting."""
    client = get_redis()
    if client is not None:
        try:
            client.delete(_wake_key(alias, channel, priority) + ":helper")
        except redis.RedisError:
            pass


def ring_helper(alias: str, bell: Doorbell) -> bool:
    """A drain found a full batch: publish one more drain to share the backlog, unless one
    such helper is already waiting (without Redis: always)."""
    client = get_redis()
    if client is not None:
        try:
            if not client.set(_wake_key(alias, *bell) + ":helper", b"1", nx=True, ex=WAKE_TTL_SECONDS):
                return False
        except redis.RedisError:
            pass
    return ring(alias, [bell], force=True) > 0


def mark_unpublished(alias: str, delivery_ids: list) -> None:
    """Hand the rows to the next sweep (within a second) instead of their republish deadline."""
    try:
        Delivery.objects.using(alias).filter(id__in=delivery_ids, status=DeliveryStatus.QUEUED).update(
            published_at=None, republish_at=timezone.now()
        )
    except Exception:
        # The rows keep their republish deadline; the sweep still finds them, later.
        logger.exception("could not mark %d deliveries unpublished on %s", len(delivery_ids), alias)


def batch_size(channel: str) -> int:
    return settings.DELIVERY_BATCH_SIZE[channel]

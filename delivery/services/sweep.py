"""The outbox sweep: publish every delivery that is due and not on its way.

Beat runs one sweep task per shard every SWEEP_INTERVAL_SECONDS on the maintenance queue
(never behind fan-out work on ``core``). It is what makes a 202 a promise: whatever happened
to a broker message, the delivery row is still there and the sweep hands it out again.
Running it twice at once is harmless: rows are locked with SKIP LOCKED, and a delivery is
sent only by whoever claims it.

What is due:

* scheduled sends whose time came, and retries whose backoff elapsed;
* claimed deliveries whose lease expired (their worker was killed or hung), or that were
  claimed before their database server last started (a restart cuts every session, so
  nobody can finish them: without this they would wait out their whole lease);
* queued deliveries whose publish failed (``republish_at`` set to now);
* queued deliveries whose message is lost. A message is presumed lost when its queue is
  empty in the broker and the row was published longer ago than its priority's grace period
  (a worker would have claimed it), or when the broker lost its data (Redis restarted
  without persistence: a marker key the sweep keeps there is gone). A long backlog is
  therefore never republished while it is merely waiting its turn;
* as a backstop, queued rows still queued at ``republish_at`` (an hour, then doubling).

It also ends the fallback standbys whose delivery was sent (``fallback_not_needed``), and
activates any whose delivery failed without the dispatcher doing it (see
``delivery.services.fallback``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from config.celery import app as celery_app
from config.queues import delivery_queue
from config.sharding import shard_aliases
from delivery import retry
from delivery.models import Delivery, DeliveryStatus, lapsed_after_handoff
from delivery.services import fallback
from delivery.services.publishing import publish_deliveries

logger = logging.getLogger(__name__)

LEASE_EXPIRED = "lease_expired"
_EPOCH_KEY = "notify:broker-epoch:{alias}"


@dataclass
class ShardSweep:
    alias: str
    republished: int = 0
    dead_lettered: int = 0
    fallbacks_ended: int = 0
    fallbacks_activated: int = 0
    broker_lost_data: bool = False


def sweep_shard(alias: str, *, limit: int | None = None) -> ShardSweep:
    report = ShardSweep(alias)
    now = timezone.now()
    report.dead_lettered = dead_letter_exhausted_leases(alias, now)
    report.fallbacks_ended = fallback.end_unneeded(alias, now=now)
    report.fallbacks_activated = fallback.activate(alias, None, now=now)  # backstop; the dispatcher does it
    with _BrokerView() as broker:
        if broker.lost_data(alias):
            marked = mark_all_queued_unpublished(alias, now)
            broker.remember(alias)  # only once every lost row is marked
            report.broker_lost_data = True
            logger.warning("the broker lost its messages; %d queued deliveries on %s are published again", marked, alias)
        empty = broker.empty_queues()
    restarted_at = database_started(alias)
    report.republished = _republish_due(alias, now, empty, restarted_at, limit or settings.SWEEP_BATCH_LIMIT)
    if report.republished or report.dead_lettered:
        logger.info("sweep of %s: %d published again, %d dead-lettered", alias, report.republished, report.dead_lettered)
    return report


def database_started(alias: str) -> datetime | None:
    """When the shard's PostgreSQL server started (None for SQLite, which has no server)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        return cursor.fetchone()[0]


def _due(now: datetime, empty_queues: set[tuple[str, str]], restarted_at: datetime | None = None) -> Q:
    due = (
        Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.QUEUED, republish_at__lte=now)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )
    if restarted_at is not None:
        # A claim (it sets updated_at) older than the server's start lost its session in the
        # restart: its worker's task fails on the cut connection and is retried, and a retry
        # claims only queued rows, so the batch would wait out its lease after the shard is
        # back. It compares a worker's clock with the database's: NTP keeps them far closer
        # than a restart takes. (Behind a transaction-pooling PgBouncer a holder can outlive
        # the restart: its batch may then be sent twice, flagged possibly_duplicated.)
        due |= Q(status=DeliveryStatus.SENDING, updated_at__lt=restarted_at)
    grace = settings.REPUBLISH_GRACE_SECONDS
    by_priority: dict[str, list[str]] = defaultdict(list)
    for channel, priority in empty_queues:
        by_priority[priority].append(channel)
    for priority, channels in by_priority.items():
        due |= Q(
            status=DeliveryStatus.QUEUED,
            priority=priority,
            channel__in=sorted(channels),
            published_at__lte=now - timedelta(seconds=grace[priority]),
        )
    return due


_PRIORITY_RANK = Case(
    *(When(priority=priority, then=Value(rank)) for rank, priority in enumerate(settings.PRIORITIES)),
    default=Value(len(settings.PRIORITIES)),
)


def _republish_due(
    alias: str, now: datetime, empty_queues: set[tuple[str, str]], restarted_at: datetime | None, limit: int
) -> int:
    with transaction.atomic(using=alias):
        # Critical first: after an outage the backlog of every priority is due at once, and
        # a sweep hands out at most ``limit`` rows.
        rows = list(
            Delivery.objects.using(alias)
            .select_for_update(skip_locked=True)
            .filter(_due(now, empty_queues, restarted_at))
            .order_by(_PRIORITY_RANK)
            .values_list("id", "channel", "priority", "created_at")[:limit]
        )
        if not rows:
            return 0
        by_spacing: dict[float, list] = defaultdict(list)
        for delivery_id, _, _, created_at in rows:
            by_spacing[backstop_spacing((now - created_at).total_seconds())].append(delivery_id)
        for spacing, ids in by_spacing.items():
            Delivery.objects.using(alias).filter(id__in=ids).update(
                status=DeliveryStatus.QUEUED,
                published_at=now,
                republish_at=now + timedelta(seconds=spacing),
                possibly_duplicated=lapsed_after_handoff(),
                handed_at=None,
                lease_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
        to_publish = [(delivery_id, channel, priority) for delivery_id, channel, priority, _ in rows]
        # Forced: the doorbell of a lost message may still look rung.
        transaction.on_commit(lambda: publish_deliveries(alias, to_publish, force=True), using=alias)
    return len(rows)


def backstop_spacing(age_seconds: float) -> float:
    """The backstop waits as long again as the delivery has existed (doubling), within bounds."""
    spacing = settings.STUCK_QUEUED_AFTER_SECONDS
    cap = settings.REPUBLISH_MAX_SPACING_SECONDS
    while spacing < age_seconds and spacing < cap:
        spacing *= 2
    return min(spacing, cap)


def dead_letter_exhausted_leases(alias: str, now: datetime) -> int:
    """A delivery whose every attempt ended with its worker gone (it crashes or hangs the
    worker) stops being handed out: dead-lettered, visible and replayable."""
    exhausted = Q()
    for channel in settings.CHANNELS:
        exhausted |= Q(channel=channel, attempts__gte=retry.max_attempts(channel))
    return (
        Delivery.objects.using(alias)
        .filter(exhausted, status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
        .update(
            status=DeliveryStatus.DEAD_LETTERED,
            reason=LEASE_EXPIRED,
            last_error="no worker finished this delivery within its lease, on every attempt",
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )


def mark_all_queued_unpublished(alias: str, now: datetime | None = None) -> int:
    """Every queued delivery published before ``now`` is due at once (its message is gone)."""
    now = now or timezone.now()
    return (
        Delivery.objects.using(alias)
        .filter(status=DeliveryStatus.QUEUED, published_at__lt=now)
        .update(republish_at=now)
    )


def republish_all_queued() -> int:
    """After a restart of the in-memory broker (embedded profile) nothing queued survives in
    it: make every queued delivery due at once."""
    now = timezone.now()
    return sum(mark_all_queued_unpublished(alias, now) for alias in shard_aliases())


class _BrokerView:
    """What the sweep asks the broker, once per run. Every doubt resolves toward publishing
    again (a duplicate task claims nothing) or toward waiting for the next run, never toward
    forgetting a delivery."""

    def __enter__(self) -> _BrokerView:
        self._connection = None
        self._channel = None
        try:
            # A pooled connection: the sweep runs every second on every shard.
            self._connection = celery_app.pool.acquire(block=True, timeout=5)
            self._channel = self._connection.default_channel
        except Exception:
            logger.warning("broker unreachable; the sweep only publishes what is due by time")
        return self

    def __exit__(self, *exc_info) -> None:
        if self._connection is not None:
            try:
                if exc_info[0] is not None or self._channel is None:
                    self._connection.collect()  # do not hand a broken connection back
                self._connection.release()
            except Exception:
                pass

    @property
    def _is_redis(self) -> bool:
        return self._channel is not None and hasattr(self._channel, "conn_or_acquire")

    def lost_data(self, alias: str) -> bool:
        """The marker this sweep keeps in the broker (Redis) is gone: Redis came back empty."""
        if not self._is_redis:
            return False
        try:
            with self._channel.conn_or_acquire() as client:
                return not client.exists(_EPOCH_KEY.format(alias=alias))
        except Exception:
            return False

    def remember(self, alias: str) -> None:
        if not self._is_redis:
            return
        try:
            with self._channel.conn_or_acquire() as client:
                client.set(_EPOCH_KEY.format(alias=alias), timezone.now().isoformat())
        except Exception:
            logger.warning("could not record the broker marker for %s; the next sweep checks again", alias)

    def empty_queues(self) -> set[tuple[str, str]]:
        """(channel, priority) pairs whose queue holds no message."""
        if self._channel is None:
            return set()
        pairs = [(channel, priority) for channel in settings.CHANNELS for priority in settings.PRIORITIES]
        try:
            if self._is_redis:
                sizes = self._redis_sizes([delivery_queue(*pair) for pair in pairs])
            else:
                sizes = [self._channel._size(delivery_queue(*pair)) for pair in pairs]
        except Exception:
            logger.warning("could not read queue depths from the broker")
            return set()
        return {pair for pair, size in zip(pairs, sizes, strict=True) if size == 0}

    def _redis_sizes(self, queues: list[str]) -> list[int]:
        """Every queue's length (over kombu's priority sub-lists) in one round trip."""
        channel = self._channel
        steps = list(channel.priority_steps)
        with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for step in steps:
                    pipe.llen(channel._q_for_pri(queue, step))
            lengths = pipe.execute()
        return [sum(lengths[i * len(steps) : (i + 1) * len(steps)]) for i in range(len(queues))]

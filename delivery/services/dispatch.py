"""Claim deliveries, hand them to their channel's provider, record what happened.

A task may run twice (late ack; a worker that died has its message redelivered), so the
claim is one conditional UPDATE that stamps a fresh lease token: a second claimer matches
no rows and sends nothing. Outcomes are written only while the token still holds, so a
worker whose lease expired cannot overwrite the work of the one that took over.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from config.sharding import shard_for_id
from delivery import retry
from delivery.models import Delivery, DeliveryStatus, Device
from delivery.providers import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TemporaryDeliveryError,
    provider_for,
)

logger = logging.getLogger(__name__)

NO_DEVICES = "no_devices"
RETRIES_EXHAUSTED = "retries_exhausted"
UNEXPECTED_ERROR = "unexpected_error"
PROVIDER_UNAVAILABLE = "provider_unavailable"


@dataclass
class BatchReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _claimable(now: datetime) -> Q:
    return (
        Q(status=DeliveryStatus.QUEUED)
        | Q(status__in=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lt=now)
    )


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
            lease_expires_at=now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return token, []
    return token, list(Delivery.objects.using(alias).filter(id__in=delivery_ids, lease_token=token))


def deliver_batch(delivery_ids: Iterable[uuid.UUID | str]) -> BatchReport:
    report = BatchReport()
    by_shard: dict[str, list[str]] = defaultdict(list)
    for delivery_id in delivery_ids:
        by_shard[shard_for_id(delivery_id)].append(str(delivery_id))
    for alias, ids in by_shard.items():
        token, deliveries = claim(alias, ids)
        report.claimed += len(deliveries)
        by_channel: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_channel[delivery.channel].append(delivery)
        for channel, group in by_channel.items():
            for status, count in _send_channel(alias, token, channel, group).items():
                report.outcomes[status] += count
    return report


def _device_tokens(alias: str, user_ids: set[str]) -> dict[str, tuple[str, ...]]:
    tokens: dict[str, list[str]] = defaultdict(list)
    rows = Device.objects.using(alias).filter(user_id__in=user_ids, active=True).values_list("user_id", "token")
    for user_id, token in rows:
        tokens[user_id].append(token)
    return {user_id: tuple(values) for user_id, values in tokens.items()}


def _send_channel(alias: str, token: uuid.UUID, channel: str, deliveries: list[Delivery]) -> dict[str, int]:
    outcomes: dict[str, int] = defaultdict(int)
    now = timezone.now()
    tokens_by_user: dict[str, tuple[str, ...]] = {}
    if channel == "push":
        tokens_by_user = _device_tokens(alias, {d.user_id for d in deliveries})
        without = [d for d in deliveries if not tokens_by_user.get(d.user_id)]
        if without:
            _finish(alias, token, without, status=DeliveryStatus.SKIPPED, reason=NO_DEVICES, now=now)
            outcomes[DeliveryStatus.SKIPPED] += len(without)
            deliveries = [d for d in deliveries if tokens_by_user.get(d.user_id)]
        if not deliveries:
            return outcomes

    provider = provider_for(channel)
    messages = [
        OutboundMessage(
            delivery_id=d.id,
            notification_id=d.notification_id,
            user_id=d.user_id,
            channel=d.channel,
            priority=d.priority,
            address=d.address,
            payload=d.payload,
            device_tokens=tokens_by_user.get(d.user_id, ()),
            attempt=d.attempts,
        )
        for d in deliveries
    ]
    results = _call_provider(provider, messages)
    _record_results(alias, token, provider.name, deliveries, results, outcomes)
    return outcomes


def _call_provider(provider, messages: list[OutboundMessage]) -> dict[uuid.UUID, SendResult]:
    try:
        if not provider.is_available():
            raise TemporaryDeliveryError(f"{provider.name} is unavailable", reason=PROVIDER_UNAVAILABLE)
        results = provider.send(messages)
    except TemporaryDeliveryError as exc:
        return {m.delivery_id: SendResult(m.delivery_id, error=exc) for m in messages}
    except Exception as exc:  # a provider bug must not lose the batch: dead-letter it, visibly
        # Where it failed, not what it said: provider messages often quote addresses.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        logger.error(
            "provider %s raised %s at %s on %d message(s)", provider.name, type(exc).__name__, where, len(messages)
        )
        error = DeliveryError(f"{type(exc).__name__} in provider {provider.name}", reason=UNEXPECTED_ERROR)
        return {m.delivery_id: SendResult(m.delivery_id, error=error) for m in messages}
    by_id = {result.delivery_id: result for result in results}
    missing = DeliveryError("provider returned no result for this message", reason=UNEXPECTED_ERROR)
    return {m.delivery_id: by_id.get(m.delivery_id) or SendResult(m.delivery_id, error=missing) for m in messages}


def _outcome_fields(delivery: Delivery, error: DeliveryError, provider_name: str, delays: dict) -> dict:
    """What a failed delivery becomes. One backoff per (channel, attempt) in the batch: the
    batch is retried together, so per-row jitter would only split it."""
    if isinstance(error, TemporaryDeliveryError) and delivery.attempts < retry.max_attempts(delivery.channel):
        key = (delivery.channel, delivery.attempts)
        if key not in delays:
            delays[key] = timezone.now() + timedelta(seconds=retry.backoff_seconds(*key))
        return dict(
            status=DeliveryStatus.RETRYING,
            reason=error.reason,
            last_error=str(error)[:2000],
            next_attempt_at=delays[key],
            provider=provider_name,
        )
    if isinstance(error, TemporaryDeliveryError):
        status, reason = DeliveryStatus.DEAD_LETTERED, RETRIES_EXHAUSTED
    elif isinstance(error, PermanentDeliveryError):
        status, reason = DeliveryStatus.FAILED, error.reason
    else:
        status, reason = DeliveryStatus.DEAD_LETTERED, error.reason
    return dict(status=status, reason=reason, last_error=str(error)[:2000], provider=provider_name)


def _record_results(
    alias: str,
    token: uuid.UUID,
    provider_name: str,
    deliveries: list[Delivery],
    results: dict[uuid.UUID, SendResult],
    outcomes: dict[str, int],
) -> None:
    """A few UPDATEs per batch, not one per delivery: rows with the same outcome are written
    together, each only while this worker's lease token still holds."""
    now = timezone.now()
    sent: dict[uuid.UUID, str] = {}
    groups: dict[tuple, list[uuid.UUID]] = defaultdict(list)
    delays: dict = {}
    for delivery in deliveries:
        result = results[delivery.id]
        if result.error is None:
            sent[delivery.id] = result.provider_message_id[:128]
        else:
            fields = _outcome_fields(delivery, result.error, provider_name, delays)
            groups[tuple(sorted(fields.items()))].append(delivery.id)
    with transaction.atomic(using=alias):
        if sent:
            recorded = (
                Delivery.objects.using(alias)
                .filter(id__in=list(sent), lease_token=token)
                .update(
                    status=DeliveryStatus.SENT,
                    reason="",
                    last_error="",
                    sent_at=now,
                    provider=provider_name,
                    provider_message_id=Case(*(When(id=i, then=Value(m)) for i, m in sent.items())),
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            outcomes[DeliveryStatus.SENT] += recorded
            lapsed = len(sent) - recorded
        else:
            lapsed = 0
        for items, ids in groups.items():
            fields = dict(items)
            recorded = (
                Delivery.objects.using(alias)
                .filter(id__in=ids, lease_token=token)
                .update(lease_token=None, lease_expires_at=None, updated_at=now, **fields)
            )
            outcomes[fields["status"]] += recorded
            lapsed += len(ids) - recorded
    if lapsed:
        logger.warning("lease lapsed on %d deliveries of %s before their outcome was recorded", lapsed, alias)
    for status, count in outcomes.items():
        logger.info("%s via %s on %s: %d %s", deliveries[0].channel, provider_name, alias, count, status)


def _finish(alias: str, token: uuid.UUID, deliveries: list[Delivery], *, status: str, reason: str, now: datetime) -> None:
    Delivery.objects.using(alias).filter(id__in=[d.id for d in deliveries], lease_token=token).update(
        status=status, reason=reason, lease_token=None, lease_expires_at=None, updated_at=now
    )

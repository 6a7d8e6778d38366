"""Claim deliveries, hand them to their channel's provider, record what happened.

A task may run twice (late ack; a worker that died has its message redelivered), so the
claim is one conditional UPDATE that stamps a fresh lease token: a second claimer matches
no rows and sends nothing. Outcomes are written only while the token still holds, so a
worker whose lease expired cannot overwrite the work of the one that took over.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Func, JSONField, Value, When
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
    providers_for,
)
from delivery.services import circuit, fallback, ratelimit
from delivery.services.claims import claim, claim_due
from delivery.services.devices import count_token_failures, deactivate_tokens
from delivery.services.provider_events import unless_provider_reported
from delivery.services.publishing import answer, batch_size, helper_started, hold, ring, ring_helper
from delivery.signals import ADDRESS_REJECTION_REASONS, address_rejected

logger = logging.getLogger(__name__)

NO_DEVICES = "no_devices"
RETRIES_EXHAUSTED = "retries_exhausted"
UNEXPECTED_ERROR = "unexpected_error"
PROVIDER_UNAVAILABLE = "provider_unavailable"


@dataclass
class BatchReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def drain(alias: str, channel: str, priority: str) -> BatchReport:
    """The doorbell task: send one queue's queued deliveries, oldest first, a batch at a time,
    until it is empty.

    While it runs it holds the doorbell, so sends arriving meanwhile publish no new task: the
    next pass of this loop takes them, batched with whatever else came. When a pass finds
    nothing it answers the bell and looks once more (a row committed since the last pass rang
    a bell that was still held). After ``DRAIN_MAX_SECONDS`` it rings for itself and returns,
    so the worker's queue order (critical first) decides what runs next.
    """
    limit = batch_size(channel)
    report = BatchReport()
    deadline = time.monotonic() + settings.DRAIN_MAX_SECONDS
    bell = (channel, priority)
    helper_started(alias, *bell)
    while True:
        provider, wait = choose_provider(channel)
        if provider is None:
            _ring_quietly(alias, bell, helper=False, countdown=wait)  # every circuit open: rows wait, untouched
            return report
        # Claim only what the provider's rate allows now; an empty bucket rings again later
        # instead of holding this worker slot.
        allowance, wait = ratelimit.take(provider.name, limit)
        if not allowance:
            circuit.release_probe(provider.name)
            _ring_quietly(alias, bell, helper=False, countdown=ratelimit.wait_for_batch(provider.name, wait, limit))
            return report
        token, deliveries = claim_due(alias, channel, priority, allowance)
        if not deliveries:
            answer(alias, *bell)
            token, deliveries = claim_due(alias, channel, priority, allowance)
            if not deliveries:
                ratelimit.give_back(provider.name, allowance)
                circuit.release_probe(provider.name)
                return report
            hold(alias, *bell)
        ratelimit.give_back(provider.name, allowance - len(deliveries))
        if len(deliveries) >= limit:
            _ring_quietly(alias, bell, helper=True)  # more waiting: another process helps
        report.claimed += len(deliveries)
        for status, count in _send_channel(alias, token, channel, deliveries, provider).items():
            report.outcomes[status] += count
        if time.monotonic() >= deadline:
            _ring_quietly(alias, bell, helper=False)
            return report


def _ring_quietly(alias: str, bell: tuple[str, str], *, helper: bool, countdown: float = 0.0) -> None:
    try:
        if helper:
            ring_helper(alias, bell)
        else:
            ring(alias, [bell], force=True, countdown=countdown)
    except Exception:
        # Left queued, the rows are found by the sweep (an empty queue, then its grace).
        logger.warning("could not ring for %s.%s on %s; the sweep will", *bell, alias)


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


def _send_channel(
    alias: str, token: uuid.UUID, channel: str, deliveries: list[Delivery], provider=None
) -> dict[str, int]:
    outcomes: dict[str, int] = defaultdict(int)
    now = timezone.now()
    tokens_by_user: dict[str, tuple[str, ...]] = {}
    if channel == "push":
        tokens_by_user = _device_tokens(alias, {d.user_id for d in deliveries})
        without = [d for d in deliveries if not tokens_by_user.get(d.user_id)]
        if without:
            with transaction.atomic(using=alias):
                _finish(alias, token, without, status=DeliveryStatus.SKIPPED, reason=NO_DEVICES, now=now)
                fallback.activate(alias, [d.id for d in without], now=now)  # no device: the user's next channel
            outcomes[DeliveryStatus.SKIPPED] += len(without)
            deliveries = [d for d in deliveries if tokens_by_user.get(d.user_id)]
        if not deliveries:
            return outcomes

    if provider is None:
        provider, wait = choose_provider(channel)
        if provider is None:
            _defer(alias, token, deliveries, wait, reason=PROVIDER_UNAVAILABLE, now=now)
            outcomes[DeliveryStatus.RETRYING] += len(deliveries)
            return outcomes
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
    _report_to_circuit(provider.name, results)
    if channel == "push":
        results = _settle_targets(alias, results)
    _record_results(alias, token, provider.name, deliveries, results, outcomes)
    return outcomes


def choose_provider(channel: str):
    """(provider, 0) for the channel's first provider whose circuit lets a call through, or
    (None, seconds until one may) when every circuit is open."""
    waits = []
    for provider in providers_for(channel):
        if not provider.is_available():
            continue
        permission = circuit.allow(provider.name)
        if permission.allowed:
            return provider, 0.0
        waits.append(permission.retry_in)
    return None, min(waits, default=settings.CIRCUIT_COOLDOWN_SECONDS)


def _report_to_circuit(provider_name: str, results: dict[uuid.UUID, SendResult]) -> None:
    """A call whose every message failed temporarily (or unexpectedly) is a failure of the
    provider; a call that delivered anything, or refused messages for their own reasons, is
    the provider working."""
    errors = [r.error for r in results.values()]
    if errors and all(e is not None and not isinstance(e, PermanentDeliveryError) for e in errors):
        circuit.record_failure(provider_name)
    else:
        circuit.record_success(provider_name)


def _defer(alias: str, token: uuid.UUID, deliveries, seconds: float, *, reason: str, now: datetime) -> None:
    """Back to waiting without counting an attempt (no provider may be called now)."""
    Delivery.objects.using(alias).filter(id__in=[d.id for d in deliveries], lease_token=token).update(
        status=DeliveryStatus.RETRYING,
        reason=reason,
        next_attempt_at=now + timedelta(seconds=max(seconds, 0.5)),
        attempts=F("attempts") - 1,
        lease_token=None,
        lease_expires_at=None,
        handed_at=None,
        updated_at=now,
    )


# Per-target errors that mean the token will never work again: the device is deactivated.
DEAD_TOKEN_REASONS = frozenset({"unregistered", "invalid_token"})


def _settle_targets(alias: str, results: dict[uuid.UUID, SendResult]) -> dict[uuid.UUID, SendResult]:
    """A message to several devices is sent when one of them got it; tokens the provider
    says are gone are deactivated with the reason. All targets failed: the message failed
    with the first permanent error, or is retried if any failure was temporary."""
    dead: dict[str, str] = {}
    failing: set[str] = set()
    working: set[str] = set()
    settled = {}
    for delivery_id, result in results.items():
        if not result.targets:
            settled[delivery_id] = result
            continue
        for target in result.targets:
            if target.error is None:
                working.add(target.target)
            elif target.error.reason in DEAD_TOKEN_REASONS:
                dead[target.target] = target.error.reason
            else:
                failing.add(target.target)
        delivered = [t for t in result.targets if t.ok]
        if delivered:
            settled[delivery_id] = SendResult(
                delivery_id, delivered[0].provider_message_id, None, result.targets, result.details
            )
            continue
        errors = [t.error for t in result.targets]
        temporary = next((e for e in errors if isinstance(e, TemporaryDeliveryError)), None)
        settled[delivery_id] = SendResult(delivery_id, error=temporary or errors[0], targets=result.targets)
    if dead:
        deactivate_tokens(alias, dead)
    if failing or working:
        count_token_failures(alias, failing=failing, working=working)
    return settled


def _call_provider(provider, messages: list[OutboundMessage]) -> dict[uuid.UUID, SendResult]:
    try:
        if not provider.is_available():
            raise TemporaryDeliveryError(f"{provider.name} is unavailable", reason=PROVIDER_UNAVAILABLE)
        results = provider.send(messages)
    except DeliveryError as exc:
        # The provider refused the whole batch: temporary errors retry, permanent ones fail
        # every message with the provider's reason.
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
    """What a failed delivery becomes. One backoff per (channel, attempt, Retry-After) in the
    batch: the batch is retried together, so per-row jitter would only split it."""
    if isinstance(error, TemporaryDeliveryError) and delivery.attempts < retry.max_attempts(delivery.channel):
        key = (delivery.channel, delivery.attempts, error.retry_after)
        if key not in delays:
            delay = retry.backoff_seconds(delivery.channel, delivery.attempts, retry_after=error.retry_after)
            delays[key] = timezone.now() + timedelta(seconds=delay)
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
    details: dict[uuid.UUID, dict] = {}
    rejected: list[tuple[Delivery, str]] = []
    groups: dict[tuple, list[uuid.UUID]] = defaultdict(list)
    delays: dict = {}
    for delivery in deliveries:
        result = results[delivery.id]
        if result.error is None:
            sent[delivery.id] = result.provider_message_id[:128]
            if result.details:
                details[delivery.id] = dict(result.details)
        else:
            if isinstance(result.error, PermanentDeliveryError) and result.error.reason in ADDRESS_REJECTION_REASONS:
                rejected.append((delivery, result.error.reason))
            fields = _outcome_fields(delivery, result.error, provider_name, delays)
            groups[tuple(sorted(fields.items()))].append(delivery.id)
    with transaction.atomic(using=alias):
        if sent:
            recorded = (
                Delivery.objects.using(alias)
                .filter(id__in=list(sent), lease_token=token)
                .update(
                    # A webhook may have reported delivery (or a bounce) before the provider's
                    # answer reached us: that stays.
                    status=unless_provider_reported("status", DeliveryStatus.SENT),
                    reason=unless_provider_reported("reason", ""),
                    last_error=unless_provider_reported("last_error", ""),
                    sent_at=now,
                    provider=provider_name,
                    provider_message_id=Case(*(When(id=i, then=Value(m)) for i, m in sent.items())),
                    **_details_update(details),
                    handed_at=None,
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
                .update(lease_token=None, lease_expires_at=None, handed_at=None, updated_at=now, **fields)
            )
            outcomes[fields["status"]] += recorded
            lapsed += len(ids) - recorded
        # A permanent failure hands over to the delivery's fallback, if it has one, at once.
        failed = [i for items, ids in groups.items() if dict(items)["status"] == DeliveryStatus.FAILED for i in ids]
        if failed:
            fallback.activate(alias, failed, now=now)
    if lapsed:
        logger.warning("lease lapsed on %d deliveries of %s before their outcome was recorded", lapsed, alias)
    for delivery, reason in rejected:
        _announce_rejected_address(delivery, reason)
    # One line per batch, whatever its outcomes (the ids and addresses stay out of logs).
    summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
    logger.info("%s via %s on %s: %s", deliveries[0].channel, provider_name, alias, summary)


def _details_update(details: dict[uuid.UUID, dict]) -> dict:
    """The provider's report per sent delivery (SMS segments, price), when it gave one."""
    if not details:
        return {}
    whens = (
        When(id=i, then=_JSONMerge(Value(d, output_field=JSONField()), F("provider_details")))
        for i, d in details.items()
    )
    return {"provider_details": Case(*whens, default=F("provider_details"), output_field=JSONField())}


class _JSONMerge(Func):
    """``report`` merged under what is already stored: a status webhook that got in first (its
    price, its flags) is not overwritten by the provider's answer to our send call."""

    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" || ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="json_patch", **extra)


def _announce_rejected_address(delivery: Delivery, reason: str) -> None:
    """Tell the app that owns recipients (delivery imports none) so it flags the address. A
    receiver's failure must not undo the recorded outcome: it is logged, not raised."""
    responses = address_rejected.send_robust(
        sender=Delivery, channel=delivery.channel, user_id=delivery.user_id, reason=reason
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error("address_rejected receiver %s raised %s", receiver.__qualname__, type(response).__name__)


def _finish(
    alias: str, token: uuid.UUID, deliveries: list[Delivery], *, status: str, reason: str, now: datetime
) -> None:
    Delivery.objects.using(alias).filter(id__in=[d.id for d in deliveries], lease_token=token).update(
        status=status, reason=reason, lease_token=None, lease_expires_at=None, handed_at=None, updated_at=now
    )

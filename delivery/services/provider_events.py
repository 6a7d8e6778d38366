"""What providers report after they accepted a message (their webhooks), applied to deliveries.

Providers send events late, more than once and out of order, so every event is applied as a
move up a fixed order and never down: a delivery's status only ever moves forward

    (scheduled | queued | sending | retrying | dead_lettered) -> sent -> delivered -> opened -> clicked
    (... | sent) -> bounced | failed

A ``delivered`` after an ``opened`` leaves it opened; a ``processed`` after a ``delivered``
leaves it delivered; the same event twice changes nothing the second time. Our own pending
and dead-letter states give way to what the provider saw (a send whose answer we lost did
reach it). ``failed`` of our own and ``skipped`` are final: the provider never had those.
Timestamps keep the earliest report; flags on the recipient (bounced address, opt-out) are
signalled once per delivery, with a marker in ``provider_details``.

The event's delivery id is the one we gave the provider (SendGrid ``custom_args``, the
``?d=`` of Twilio's callback URL), so it names its shard: no lookup across shards.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from config.sharding import shard_for_id
from delivery.models import Delivery, DeliveryStatus
from delivery.signals import address_rejected, contact_opted_out

logger = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    ACCEPTED = "accepted"  # SendGrid processed; Twilio queued/sending/sent
    DEFERRED = "deferred"  # the receiving server asked the provider to try again later
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"  # the receiving mail server refused it
    FAILED = "failed"  # the provider gave up on it (dropped, undelivered, failed)
    COMPLAINED = "complained"  # marked as spam
    UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event a provider reported about one of our deliveries. Nothing here may hold the
    recipient's address: it ends up in the delivery row and in logs."""

    delivery_id: uuid.UUID
    provider: str  # sendgrid | twilio
    kind: EventKind
    at: datetime
    reason: str = ""  # a short code for the delivery's reason when it fails (bounce, blocked, undelivered)
    detail: str = ""  # for last_error when it fails (an SMTP or provider error code, never an address)
    address_problem: str = ""  # "" or one of delivery.signals.ADDRESS_REJECTION_REASONS
    opted_out: str = ""  # "", spamreport, unsubscribe or stop
    details: dict[str, Any] = field(default_factory=dict)  # kept in provider_details (price, error code)


# The channel each provider's events may touch: an event naming another channel's delivery
# is not ours to apply (a forged id cannot get here, but a misrouted one can).
PROVIDER_CHANNELS = {"sendgrid": "email", "twilio": "sms"}

_SUPERSEDED = frozenset(
    {
        DeliveryStatus.SCHEDULED,
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENDING,
        DeliveryStatus.RETRYING,
        DeliveryStatus.DEAD_LETTERED,
    }
)
_SUCCESS_RANK = {
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.OPENED: 3,
    DeliveryStatus.CLICKED: 4,
}
_TARGET = {
    EventKind.ACCEPTED: DeliveryStatus.SENT,
    EventKind.DELIVERED: DeliveryStatus.DELIVERED,
    EventKind.OPENED: DeliveryStatus.OPENED,
    EventKind.CLICKED: DeliveryStatus.CLICKED,
    EventKind.BOUNCED: DeliveryStatus.BOUNCED,
    EventKind.FAILED: DeliveryStatus.FAILED,
}
_TIMESTAMP = {EventKind.DELIVERED: "delivered_at", EventKind.OPENED: "opened_at", EventKind.CLICKED: "clicked_at"}
# A status the provider reported: the worker's own "sent", written after the provider call
# returns, must not overwrite one that a faster webhook wrote meanwhile (see dispatch).
PROVIDER_REPORTED_STATUSES = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.OPENED,
    DeliveryStatus.CLICKED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.FAILED,
)


def unless_provider_reported(field_name: str, value: Any) -> Case:
    """For the worker's UPDATE recording "sent": ``value``, unless the provider's webhook
    already reported what happened next while the worker was still waiting for its answer
    (every field of the UPDATE sees the row as it was, so each can test the old status)."""
    return Case(
        When(status__in=PROVIDER_REPORTED_STATUSES, then=F(field_name)),
        default=Value(value),
        output_field=Delivery._meta.get_field(field_name),
    )


UPDATED_FIELDS = (
    "status",
    "reason",
    "last_error",
    "next_attempt_at",
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "provider_details",
    "updated_at",
)


def next_status(current: str, kind: EventKind) -> str | None:
    """The status an event moves a delivery to, or None when it stays where it is."""
    target = _TARGET.get(kind)
    if target is None or current == DeliveryStatus.SKIPPED:
        return None
    if current in _SUPERSEDED:
        return target
    if target in _SUCCESS_RANK:
        current_rank = _SUCCESS_RANK.get(current)
        return target if current_rank is not None and _SUCCESS_RANK[target] > current_rank else None
    # A provider's failure ends only what it had not yet confirmed.
    return target if current == DeliveryStatus.SENT else None


@dataclass(slots=True)
class Effects:
    """What applying one event did to one (in-memory) delivery."""

    changed: bool = False
    address_problem: str = ""  # signal address_rejected with this reason
    opted_out: str = ""  # signal contact_opted_out with this reason


def apply_event(delivery: Delivery, event: ProviderEvent) -> Effects:
    """Apply ``event`` to ``delivery`` in memory (pure but for the instance it mutates)."""
    effects = Effects()
    if delivery.status == DeliveryStatus.SKIPPED:
        return effects  # never sent: nothing a provider says about it can be ours
    details = dict(delivery.provider_details or {})
    target = next_status(delivery.status, event.kind)
    if target is not None:
        delivery.status = target
        delivery.next_attempt_at = None
        if target in (DeliveryStatus.BOUNCED, DeliveryStatus.FAILED):
            delivery.reason, delivery.last_error = event.reason[:64], event.detail[:2000]
        else:
            delivery.reason, delivery.last_error = "", ""
        effects.changed = True
    if event.kind == EventKind.ACCEPTED and delivery.sent_at is None:
        delivery.sent_at = event.at
        effects.changed = True
    stamp = _TIMESTAMP.get(event.kind)
    if stamp:
        known = getattr(delivery, stamp)
        if known is None or event.at < known:
            setattr(delivery, stamp, event.at)
            effects.changed = True
    for key, value in event.details.items():
        if details.get(key) != value:
            details[key] = value
    if event.address_problem and "address_rejected" not in details:
        details["address_rejected"] = event.address_problem
        effects.address_problem = event.address_problem
    if event.opted_out and "opted_out" not in details:
        details["opted_out"] = event.opted_out
        effects.opted_out = event.opted_out
    if details != (delivery.provider_details or {}):
        delivery.provider_details = details
        effects.changed = True
    return effects


def apply_events(events: Sequence[ProviderEvent]) -> Counter[str]:
    """Apply a provider's events; returns how many were ``applied``, ``unchanged``,
    ``unknown`` (no such delivery) or ``mismatched`` (a delivery of another channel).

    Per shard, one transaction locks the deliveries concerned (in id order, so two webhook
    requests never deadlock on each other), applies every event in memory, writes the changed
    rows in one statement and sends the signals, whose receivers flag the recipient on the
    same shard: if one fails the batch rolls back and the provider's retry finds it unchanged.
    """
    counts: Counter[str] = Counter()
    by_shard: dict[str, list[ProviderEvent]] = defaultdict(list)
    for event in events:
        by_shard[shard_for_id(event.delivery_id)].append(event)
    for alias, group in by_shard.items():
        with transaction.atomic(using=alias):
            rows = {
                d.id: d
                for d in Delivery.objects.using(alias)
                .select_for_update()
                .filter(id__in={e.delivery_id for e in group})
                .only("id", "channel", "user_id", "address", *UPDATED_FIELDS)  # not the rendered payload
                .order_by("id")
            }
            changed: dict[uuid.UUID, Delivery] = {}
            signals: list[tuple[Delivery, Effects]] = []
            for event in group:
                delivery = rows.get(event.delivery_id)
                if delivery is None:
                    counts["unknown"] += 1
                    continue
                if delivery.channel != PROVIDER_CHANNELS.get(event.provider):
                    counts["mismatched"] += 1
                    continue
                effects = apply_event(delivery, event)
                counts["applied" if effects.changed else "unchanged"] += 1
                if effects.changed:
                    changed[delivery.id] = delivery
                if effects.address_problem or effects.opted_out:
                    signals.append((delivery, effects))
            if changed:
                now = timezone.now()
                for delivery in changed.values():
                    delivery.updated_at = now
                _write(alias, list(changed.values()))
            for delivery, effects in signals:
                _signal(delivery, effects)
    return counts


def _write(alias: str, deliveries: list[Delivery]) -> None:
    """One UPDATE per row, pipelined in one executemany: with Django's bulk_update (one CASE
    per field over every row) a batch of 1,000 events took 20 s; the whole request now takes
    ~0.5 s (signature, parsing, locked read, write; this 2-core machine)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = [Delivery._meta.get_field(name) for name in UPDATED_FIELDS]
    pk = Delivery._meta.pk
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(Delivery._meta.db_table)} SET {assignments} WHERE {quote(pk.column)} = %s"
    params = [
        [f.get_db_prep_save(getattr(d, f.attname), connection) for f in fields]
        + [pk.get_db_prep_value(d.pk, connection)]
        for d in deliveries
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _signal(delivery: Delivery, effects: Effects) -> None:
    if effects.address_problem:
        address_rejected.send(
            sender=Delivery,
            channel=delivery.channel,
            user_id=delivery.user_id,
            reason=effects.address_problem,
            address=delivery.address,
        )
    if effects.opted_out:
        contact_opted_out.send(
            sender=Delivery, channel=delivery.channel, user_id=delivery.user_id, reason=effects.opted_out
        )

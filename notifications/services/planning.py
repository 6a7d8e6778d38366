"""Turn an accepted send into rows: recipient facts -> decision -> deliveries and inbox item.

Pure planning: no database access. The send service reads the recipients (one query per
shard) before and writes the planned rows after.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.bulk import JsonText, RowSpec
from config.sharding import bucket_for, new_id
from delivery.models import DeliveryStatus
from delivery.services.records import PlannedDelivery
from notifications.models import InboxItem, Notification, Outcome
from notifications.services.catalog import TypeInfo
from notifications.services.idempotency import KeyRequest
from notifications.services.sending import ChannelPlan, ContactUpdate, Sender, SendRequest
from preferences import policy

NOTIFICATION_ROW = RowSpec(Notification)
INBOX_ROW = RowSpec(InboxItem, defaults={"delivered_at": None, "seen_at": None, "read_at": None, "archived_at": None})

CONTACT_FIELDS = ("email", "phone", "locale", "timezone")
# Plain strings: the enums' str() is a Python call, thousands of times per bulk request.
_QUEUED, _SCHEDULED, _UNDELIVERABLE = Outcome.QUEUED.value, Outcome.SCHEDULED.value, Outcome.UNDELIVERABLE.value
_STATUS_QUEUED, _STATUS_SCHEDULED, _STATUS_SKIPPED, _STATUS_STANDBY = (
    DeliveryStatus.QUEUED.value,
    DeliveryStatus.SCHEDULED.value,
    DeliveryStatus.SKIPPED.value,
    DeliveryStatus.STANDBY.value,
)
# The reason on a fallback delivery (its fallback_of names the delivery it stands in for).
FALLBACK = "fallback"


@dataclass(slots=True)
class PreparedSend:
    """A validated, authorized and rendered request item, before idempotency and planning."""

    index: int
    request: SendRequest
    type: TypeInfo
    alias: str
    priority: str
    channels: tuple[str, ...]
    fingerprint: str
    send_at: datetime | None  # None: now
    key: KeyRequest
    data_json: JsonText  # the request's data, serialized once (sorted keys)
    payloads: dict[str, dict[str, str]]  # rendered, per channel that has a template
    contact: ContactUpdate | None  # normalized contact fields to store

    @property
    def user_id(self) -> str:
        return self.request.user_id

    @property
    def notification_id(self) -> uuid.UUID:
        return self.key.proposed_id


@dataclass(slots=True)
class PlannedNotification:
    prepared: PreparedSend
    outcome: str
    notification_row: tuple
    deliveries: list[PlannedDelivery]
    inbox_row: tuple | None
    channels: list[ChannelPlan]


def recipient_facts(stored: dict[str, Any] | None, contact: ContactUpdate | None) -> dict[str, Any]:
    """The stored contact record with the contact fields given in the send laid over it."""
    facts = dict(stored) if stored else {"email": "", "phone": "", "locale": "", "timezone": ""}
    if contact is not None:
        for name in CONTACT_FIELDS:
            value = getattr(contact, name)
            if value is not None:
                if name == "email" and value != facts.get("email"):
                    facts["email_bounced"] = False  # a new address has not bounced
                facts[name] = value
    return facts


def decide(prepared: PreparedSend, facts: dict[str, Any], channels: tuple[str, ...] | None = None) -> policy.SendDecision:
    return policy.decide(
        notification_type=policy.TypeFacts(prepared.type.key, prepared.type.category, prepared.type.required),
        channels=prepared.channels if channels is None else channels,
        templates_available=prepared.payloads.keys(),
        recipient=policy.RecipientFacts(
            email=facts.get("email") or "",
            email_verified=facts.get("email_verified", True),
            email_bounced=facts.get("email_bounced", False),
            phone=facts.get("phone") or "",
            phone_verified=facts.get("phone_verified", True),
        ),
    )


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """A fallback delivery to plan: ``channel`` stands in for ``after`` (the previous channel
    of the chain that is planned); ``active`` when ``after`` already cannot reach the user."""

    channel: str
    after: str
    active: bool


def fallback_steps(
    chain: tuple[str, ...], primary: dict[str, policy.ChannelVerdict], extra: dict[str, policy.ChannelVerdict]
) -> list[FallbackStep]:
    """Walk the type's fallback chain. It starts at the first channel the notification uses;
    a channel of the chain it does not use is planned after the previous planned one — on
    standby behind a channel that will be tried, or at once behind one the recipient cannot
    be reached on (no address, bounced, unverified). A channel skipped for another reason
    (opted out, no template) ends the chain there: the user or the operator chose that, it is
    not a failure to make up for. A fallback that cannot reach the user either is passed over."""
    steps: list[FallbackStep] = []
    previous: tuple[str, bool] | None = None  # (channel, unreachable)
    for channel in chain:
        verdict = primary.get(channel)
        if verdict is not None:
            if verdict.send:
                previous = (channel, False)
            else:
                previous = (channel, True) if verdict.reason in policy.UNREACHABLE else None
            continue
        if previous is None or not extra[channel].send:
            continue
        steps.append(FallbackStep(channel, previous[0], active=previous[1]))
        previous = (channel, False)
    return steps


def _payload(prepared: PreparedSend, channel: str) -> dict | None:
    payload = prepared.payloads.get(channel)
    if channel == "inapp" and payload is not None:
        # The bell's frame shows the category; the worker that publishes it reads only this.
        payload = {**payload, "category": prepared.type.category}
    return payload


def plan(prepared: PreparedSend, facts: dict[str, Any], sender: Sender, now: datetime) -> PlannedNotification:
    decision = decide(prepared, facts)
    notification_id = prepared.notification_id
    bucket = bucket_for(prepared.user_id)
    send_status = _STATUS_SCHEDULED if prepared.send_at else _STATUS_QUEUED
    addresses = {"email": facts.get("email") or "", "sms": facts.get("phone") or ""}

    deliveries = []
    channels = []
    for verdict in decision.verdicts:
        status = send_status if verdict.send else _STATUS_SKIPPED
        reason = "" if verdict.reason == policy.OK else verdict.reason
        deliveries.append(
            PlannedDelivery(
                id=new_id(bucket),
                notification_id=notification_id,
                user_id=prepared.user_id,
                channel=verdict.channel,
                priority=prepared.priority,
                status=status,
                reason=reason,
                address=addresses.get(verdict.channel, "") if verdict.send else "",
                payload=_payload(prepared, verdict.channel) if verdict.send else None,
                next_attempt_at=prepared.send_at if verdict.send else None,
            )
        )
        channels.append(ChannelPlan(verdict.channel, status, reason))
    deliverable = decision.outcome == policy.DELIVERABLE

    chain = prepared.type.fallback_channels
    if chain:
        extra_channels = tuple(c for c in chain if c not in prepared.channels)
        extra = {v.channel: v for v in decide(prepared, facts, extra_channels).verdicts} if extra_channels else {}
        planned_by_channel = {d.channel: d for d in deliveries}
        for step in fallback_steps(chain, {v.channel: v for v in decision.verdicts}, extra):
            status = send_status if step.active else _STATUS_STANDBY
            fallback = PlannedDelivery(
                id=new_id(bucket),
                notification_id=notification_id,
                user_id=prepared.user_id,
                channel=step.channel,
                priority=prepared.priority,
                status=status,
                reason=FALLBACK,
                address=addresses.get(step.channel, ""),
                payload=prepared.payloads.get(step.channel),
                next_attempt_at=prepared.send_at,
                fallback_of=planned_by_channel[step.after].id,
            )
            planned_by_channel[step.channel] = fallback
            deliveries.append(fallback)
            channels.append(ChannelPlan(step.channel, status, FALLBACK))
            deliverable = deliverable or step.active
    if deliverable:
        outcome = _SCHEDULED if prepared.send_at else _QUEUED
    else:
        outcome = _UNDELIVERABLE

    inbox_row = None
    inapp = prepared.payloads.get("inapp") if "inapp" in decision.channels_to_send else None
    if inapp is not None:
        inbox_row = INBOX_ROW.row(
            notification_id=notification_id,
            user_id=prepared.user_id,
            type_key=prepared.type.key,
            category=prepared.type.category,
            title=inapp.get("title", "")[:500],
            body=inapp.get("body", ""),
            action_url=inapp.get("action_url", "")[:500],
            created_at=now,
            visible_at=prepared.send_at or now,
        )
    notification_row = NOTIFICATION_ROW.row(
        id=notification_id,
        user_id=prepared.user_id,
        sender=sender.key,
        type_key=prepared.type.key,
        category=prepared.type.category,
        priority=prepared.priority,
        data=prepared.data_json,
        idempotency_key=prepared.request.idempotency_key,
        request_hash=prepared.fingerprint,
        outcome=outcome,
        send_at=prepared.send_at,
        created_at=now,
    )
    return PlannedNotification(prepared, outcome, notification_row, deliveries, inbox_row, channels)

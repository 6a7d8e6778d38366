"""Turn an authorized send into rows: recipient facts -> decision -> rendered deliveries.

Pure planning: no database access. The send pipeline reads the recipients (one query per
shard) before and writes the planned rows after.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from config.bulk import JsonText
from config.sharding import bucket_for, new_id
from delivery.models import DeliveryStatus
from delivery.services.records import PlannedDelivery
from notifications.models import Outcome
from notifications.schemas import SendNotificationRequest
from notifications.services.catalog import TypeInfo
from notifications.services.idempotency import KeyRequest
from notifications.services.recipients import INLINE_FIELDS
from preferences import policy
from templates_app.rendering import CompiledTemplate, MissingVariables



@dataclass
class PreparedSend:
    """A validated, authorized request item, before idempotency and planning."""

    index: int
    request: SendNotificationRequest
    type: TypeInfo
    user_id: str
    alias: str
    priority: str
    channels: tuple[str, ...]
    fingerprint: str
    send_at: datetime | None  # None: now
    key: KeyRequest
    data_json: JsonText  # the request's data, serialized once (sorted keys)

    @property
    def notification_id(self) -> uuid.UUID:
        return self.key.proposed_id


@dataclass
class PlannedNotification:
    prepared: PreparedSend
    outcome: str
    notification_row: tuple
    deliveries: list[PlannedDelivery]
    inbox_row: tuple | None
    channels: list[dict[str, str]] = field(default_factory=list)


NOTIFICATION_COLUMNS = (
    "id",
    "user_id",
    "client_id",
    "type_key",
    "category",
    "priority",
    "data",
    "idempotency_key",
    "request_hash",
    "outcome",
    "send_at",
    "created_at",
)
INBOX_COLUMNS = ("notification_id", "user_id", "type_key", "category", "title", "body", "action_url", "created_at", "visible_at")


def recipient_facts(stored: dict[str, Any] | None, prepared: PreparedSend) -> dict[str, Any]:
    """The stored contact record with any inline recipient fields laid over it."""
    facts = dict(stored) if stored else {"email": "", "phone": "", "locale": "", "timezone": ""}
    inline = prepared.request.recipient
    if inline is not None:
        for name in INLINE_FIELDS:
            value = getattr(inline, name)
            if value is not None:
                if name == "email" and value != facts.get("email"):
                    facts["email_bounced"] = False
                facts[name] = value
    return facts


def decide(prepared: PreparedSend, facts: dict[str, Any], templates: Mapping[str, CompiledTemplate]) -> policy.SendDecision:
    return policy.decide(
        notification_type=policy.TypeFacts(prepared.type.key, prepared.type.category, prepared.type.required),
        channels=prepared.channels,
        templates_available=templates.keys(),
        recipient=policy.RecipientFacts(
            email=facts.get("email") or "",
            email_verified=facts.get("email_verified", True),
            email_bounced=facts.get("email_bounced", False),
            phone=facts.get("phone") or "",
            phone_verified=facts.get("phone_verified", True),
        ),
    )


def render(
    prepared: PreparedSend, decision: policy.SendDecision, templates: Mapping[str, CompiledTemplate]
) -> dict[str, dict[str, str]]:
    """Rendered payload per channel to send; raises MissingVariables naming what is missing."""
    data = prepared.request.data
    return {channel: templates[channel].render(data) for channel in decision.channels_to_send}


def plan(
    prepared: PreparedSend,
    facts: dict[str, Any],
    client_id: int,
    now: datetime,
    templates: Mapping[str, CompiledTemplate],
) -> PlannedNotification:
    """``templates``: the type's compiled templates by channel (resolved once per batch)."""
    decision = decide(prepared, facts, templates)
    payloads = render(prepared, decision, templates)
    notification_id = prepared.notification_id
    bucket = bucket_for(prepared.user_id)
    if decision.outcome == policy.DELIVERABLE:
        outcome = Outcome.SCHEDULED if prepared.send_at else Outcome.QUEUED
    elif decision.outcome == policy.PREFERENCE_BLOCKED:
        outcome = Outcome.PREFERENCE_BLOCKED
    else:
        outcome = Outcome.UNDELIVERABLE
    send_status = DeliveryStatus.SCHEDULED if prepared.send_at else DeliveryStatus.QUEUED
    addresses = {"email": facts.get("email") or "", "sms": facts.get("phone") or ""}

    deliveries = []
    channels = []
    for verdict in decision.verdicts:
        status = send_status if verdict.send else DeliveryStatus.SKIPPED
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
                payload=payloads.get(verdict.channel),
                next_attempt_at=prepared.send_at if verdict.send else None,
            )
        )
        channels.append({"channel": verdict.channel, "status": str(status), "reason": reason})

    inbox_row = None
    if "inapp" in payloads:
        inapp = payloads["inapp"]
        inbox_row = (
            notification_id,
            prepared.user_id,
            prepared.type.key,
            prepared.type.category,
            inapp.get("title", "")[:500],
            inapp.get("body", ""),
            inapp.get("action_url", "")[:500],
            now,
            prepared.send_at or now,
        )
    request = prepared.request
    notification_row = (
        notification_id,
        prepared.user_id,
        client_id,
        prepared.type.key,
        prepared.type.category,
        prepared.priority,
        prepared.data_json,
        request.idempotency_key,
        prepared.fingerprint,
        str(outcome),
        prepared.send_at,
        now,
    )
    return PlannedNotification(prepared, str(outcome), notification_row, deliveries, inbox_row, channels)


__all__ = [
    "INBOX_COLUMNS",
    "MissingVariables",
    "NOTIFICATION_COLUMNS",
    "PlannedNotification",
    "PreparedSend",
    "plan",
    "recipient_facts",
]

"""Request and response bodies of the service API.

Requests are validated by these pydantic models (about 2 µs per item, which a 1000-item bulk
request needs); drf-spectacular publishes the same models as the OpenAPI schema, so the
documentation cannot drift from what is enforced.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from config.sharding import USER_ID_PATTERN
from delivery.services import devices
from notifications import rules

Channel = Literal["email", "sms", "push", "inapp"]
Priority = Literal["critical", "high", "normal", "low"]
Platform = Literal["ios", "android", "web"]

# Hot fields are checked by pydantic's Rust core (a bulk request has 1000 items); the
# error mapper turns a pattern mismatch on these fields into the messages below. Contact
# fields are checked by the services, with the rules every door shares; a device token's
# pattern is the service's own, published here so the schema says what is accepted.
PATTERN_MESSAGES = {
    "user_id": ("invalid_user_id", rules.USER_ID_MESSAGE),
    "type": ("invalid_type", rules.TYPE_KEY_MESSAGE),
    "idempotency_key": ("invalid_idempotency_key", "must be printable text"),
    "token": (devices.InvalidDeviceToken.code, "must be 1-2048 printable characters without spaces or control characters"),
}

UserId = Annotated[str, Field(pattern=USER_ID_PATTERN.pattern, description="The platform's user id")]
TypeKey = Annotated[str, Field(pattern=rules.TYPE_KEY_PATTERN.pattern)]
Email = Annotated[str, Field(max_length=320, description="An email address")]
Phone = Annotated[str, Field(max_length=32, description="International format, e.g. +14155550101")]
Locale = Annotated[str, Field(max_length=35, description="A language tag such as en, fr-CA")]
TimeZone = Annotated[str, Field(max_length=64, description="An IANA time zone such as Europe/Paris")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=rules.IDEMPOTENCY_KEY_PATTERN.pattern)]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=False)
# Answers list every field they may carry (the schema says additionalProperties: false), so a
# field added to an answer must be added here, where the schema comes from.
_ANSWER = ConfigDict(extra="forbid")
BULK_MAX_ITEMS = 1000


class InlineRecipient(BaseModel):
    """Identify the recipient in the send itself; the fields given are stored on the
    recipient (this needs the `recipients` scope)."""

    model_config = _STRICT
    user_id: UserId
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None


_SEND_EXAMPLE = {
    "user_id": "alice",
    "type": "order_shipped",
    "data": {"name": "Alice", "order_id": "A-1"},
    "idempotency_key": "order-A-1-shipped",
}


class SendNotificationRequest(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [_SEND_EXAMPLE]})

    user_id: UserId | None = Field(None, description="The platform's user id (or give `recipient`).")
    recipient: InlineRecipient | None = None
    type: TypeKey = Field(description="Key of a notification type.")
    channels: list[Channel] | None = Field(
        None, min_length=1, description="Channels to use; defaults to the type's default channels."
    )
    priority: Priority | None = Field(None, description="Defaults to the type's default priority.")
    data: dict[str, Any] = Field(default_factory=dict, description="Template variables; at most 16 KB as JSON.")
    idempotency_key: IdempotencyKey
    send_at: AwareDatetime | None = Field(None, description="Deliver at this time (at most 7 days ahead).")


class BulkSendRequest(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [{"items": [_SEND_EXAMPLE]}]})
    items: list[SendNotificationRequest] = Field(min_length=1, max_length=BULK_MAX_ITEMS)


class ChannelResult(BaseModel):
    model_config = _ANSWER
    channel: Channel
    status: Literal[
        "queued", "scheduled", "standby", "skipped", "sending", "retrying", "sent", "delivered", "failed", "dead_lettered"
    ] = Field(description="standby: a fallback, sent only if the channel before it in the type's chain fails for good")
    reason: str = Field(
        "", description="Why a channel is skipped or failed (e.g. no_email_address, no_template); fallback for a fallback"
    )


Outcome = Literal["queued", "scheduled", "duplicate", "undeliverable"]


class SendNotificationResponse(BaseModel):
    model_config = _ANSWER
    id: uuid.UUID
    outcome: Outcome = Field(
        description="How the notification was accepted: queued, scheduled (send_at), duplicate (this "
        "idempotency key was already used; `id` is the original) or undeliverable (every channel skipped)."
    )
    channels: list[ChannelResult]


class FieldError(BaseModel):
    model_config = _ANSWER
    field: str
    code: str
    message: str


class ErrorResponse(BaseModel):
    model_config = _ANSWER
    status: int
    code: str
    message: str
    errors: list[FieldError] = []


class BulkItemResult(BaseModel):
    model_config = _ANSWER
    index: int
    id: uuid.UUID | None = None
    outcome: Outcome | None = None
    channels: list[ChannelResult] | None = None
    error: ErrorResponse | None = None


class BulkSendResponse(BaseModel):
    model_config = _ANSWER
    accepted: int = Field(description="Items that created a notification")
    duplicates: int
    failed: int
    results: list[BulkItemResult]


class DeliveryStatusOut(BaseModel):
    model_config = _ANSWER
    channel: Channel
    status: str = Field(
        description="queued, scheduled, standby, sending, retrying, sent, delivered, opened, clicked, bounced, failed, "
        "dead_lettered or skipped (delivered, opened, clicked and bounced as the provider reports them)"
    )
    reason: str = Field(
        description="why it is skipped or failed (no_devices, invalid_address, fallback_not_needed...), or fallback"
    )
    fallback_of: Channel | None = Field(
        None, description="this delivery is a fallback: the channel it stands in for (tried because that one failed)"
    )
    fallback_to: Channel | None = Field(
        None, description="the channel standing in for this one if it fails for good (see that channel's status)"
    )
    attempts: int
    provider: str
    last_error: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None = Field(description="When the provider reported it delivered")
    opened_at: datetime | None = Field(description="When the provider first reported it opened")
    clicked_at: datetime | None = Field(description="When the provider first reported a click in it")
    next_attempt_at: datetime | None
    possibly_duplicated: bool = Field(
        description="A worker stopped after handing this to the provider and before recording the outcome, so it "
        "was sent again: the user may have received it twice (delivery is at least once)."
    )


class NotificationStatusResponse(BaseModel):
    model_config = _ANSWER
    id: uuid.UUID
    user_id: str
    type: str
    priority: Priority
    accepted_as: Literal["queued", "scheduled", "undeliverable"] = Field(
        description="What the service decided when it accepted the notification (not its status now)."
    )
    status: Literal["scheduled", "in_progress", "sent", "partially_sent", "failed", "skipped"] = Field(
        description="Where delivery stands now, over all channels."
    )
    created_at: datetime
    send_at: datetime | None
    channels: list[DeliveryStatusOut]


class RecipientRequest(BaseModel):
    """The full contact record; fields left out or null are cleared. A document returned by
    GET can be sent back as it is: its read-only fields are ignored (`user_id` must match)."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "examples": [{"email": "alice@example.com", "phone": "+14155550101", "locale": "en", "timezone": "Europe/Paris"}]
        },
    )
    email: Email | None = None
    email_verified: bool = True
    phone: Phone | None = None
    phone_verified: bool = True
    locale: Locale | None = None
    timezone: TimeZone | None = None
    user_id: UserId | None = Field(None, description="Read-only; if given, must match the path.")
    email_bounced: bool | None = Field(None, description="Read-only; ignored.")
    created_at: datetime | None = Field(None, description="Read-only; ignored.")
    updated_at: datetime | None = Field(None, description="Read-only; ignored.")
    devices: list[Any] | None = Field(None, description="Read-only; ignored (use the devices endpoint).")


class DeviceOut(BaseModel):
    model_config = _ANSWER
    id: uuid.UUID
    platform: Platform
    token_preview: str
    active: bool
    deactivated_reason: str | None
    created_at: datetime
    last_seen_at: datetime


class DeviceListResponse(BaseModel):
    model_config = _ANSWER
    devices: list[DeviceOut]


class RecipientResponse(BaseModel):
    model_config = _ANSWER
    user_id: str
    email: str | None
    email_verified: bool
    email_bounced: bool
    phone: str | None
    phone_verified: bool
    locale: str | None
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    devices: list[DeviceOut]


DeviceToken = Annotated[
    str, Field(pattern=devices.TOKEN_PATTERN.pattern, description="The push token (FCM, APNs or web push)")
]


class DeviceRequest(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [{"platform": "android", "token": "fcm-example-token"}]})
    platform: Platform
    token: DeviceToken


class DeviceDeleteRequest(BaseModel):
    model_config = _STRICT
    token: DeviceToken

"""Request and response bodies of the service API.

Requests are validated by these pydantic models (about 2 µs per item, which a 1000-item bulk
request needs); drf-spectacular publishes the same models as the OpenAPI schema, so the
documentation cannot drift from what is enforced.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from config.sharding import USER_ID_PATTERN

Channel = Literal["email", "sms", "push", "inapp"]
Priority = Literal["critical", "high", "normal", "low"]
Platform = Literal["ios", "android", "web"]

_TYPE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_TIMEZONES = frozenset(zoneinfo.available_timezones())


def _email(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise PydanticCustomError("invalid_email", "is not a valid email address") from None
    return value.strip()


def _phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise PydanticCustomError("invalid_phone", "is not a valid phone number in international format (+15551234567)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise PydanticCustomError("invalid_locale", "must be a language tag such as en, fr-CA or pt-BR")
    return value.replace("_", "-")


def _timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise PydanticCustomError("invalid_timezone", "must be an IANA time zone such as Europe/Paris")
    return value


# Hot fields are checked by pydantic's Rust core (a bulk request has 1000 items); the
# error mapper turns a pattern mismatch on these fields into the messages below.
PATTERN_MESSAGES = {
    "user_id": ("invalid_user_id", "must be 1-64 characters of letters, digits and _ . : @ -"),
    "type": ("invalid_type", "must be a notification type key (lowercase letters, digits, _ and -)"),
    "idempotency_key": ("invalid_idempotency_key", "must be printable text"),
}

UserId = Annotated[str, Field(pattern=USER_ID_PATTERN.pattern)]
TypeKey = Annotated[str, Field(pattern=_TYPE_KEY.pattern)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
Locale = Annotated[str, Field(max_length=35), AfterValidator(_locale)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=False)
BULK_MAX_ITEMS = 1000


class InlineRecipient(BaseModel):
    """Identify the recipient in the send itself; stored fields are created or updated."""

    model_config = _STRICT
    user_id: UserId
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None


class SendNotificationRequest(BaseModel):
    model_config = _STRICT

    user_id: UserId | None = Field(None, description="The platform's user id (or give `recipient`).")
    # Cross-field rules (user_id or recipient, distinct channels, send_at within 7 days) are
    # checked by the send service, which visits every item anyway.
    recipient: InlineRecipient | None = None
    type: TypeKey = Field(description="Key of a notification type.")
    channels: list[Channel] | None = Field(
        None, min_length=1, description="Channels to use; defaults to the type's default channels."
    )
    priority: Priority | None = Field(None, description="Defaults to the type's default priority.")
    data: dict[str, Any] = Field(default_factory=dict, description="Template variables; at most 16 KB as JSON.")
    idempotency_key: IdempotencyKey
    send_at: AwareDatetime | None = Field(None, description="Deliver at this time (at most 7 days ahead).")

    @property
    def target_user_id(self) -> str | None:
        return self.user_id if self.user_id is not None else (self.recipient.user_id if self.recipient else None)


class BulkSendRequest(BaseModel):
    model_config = _STRICT
    items: list[SendNotificationRequest] = Field(min_length=1, max_length=BULK_MAX_ITEMS)


class ChannelResult(BaseModel):
    channel: Channel
    status: str = Field(description="queued, scheduled or skipped (see reason)")
    reason: str = ""


Outcome = Literal["queued", "scheduled", "duplicate", "preference_blocked", "undeliverable"]


class SendNotificationResponse(BaseModel):
    id: uuid.UUID
    outcome: Outcome
    channels: list[ChannelResult]


class FieldError(BaseModel):
    field: str
    code: str
    message: str


class ErrorResponse(BaseModel):
    status: int
    code: str
    message: str
    errors: list[FieldError] = []


class BulkItemResult(BaseModel):
    index: int
    id: uuid.UUID | None = None
    outcome: Outcome | None = None
    channels: list[ChannelResult] | None = None
    error: ErrorResponse | None = None


class BulkSendResponse(BaseModel):
    accepted: int = Field(description="Items that created a notification")
    duplicates: int
    failed: int
    results: list[BulkItemResult]


class DeliveryStatusOut(BaseModel):
    channel: Channel
    status: str
    reason: str
    attempts: int
    provider: str
    last_error: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None


class NotificationStatusResponse(BaseModel):
    id: uuid.UUID
    user_id: str
    type: str
    priority: Priority
    outcome: str
    status: str = Field(description="scheduled, in_progress, sent, partially_sent, failed or skipped")
    created_at: datetime
    send_at: datetime | None
    channels: list[DeliveryStatusOut]


class RecipientRequest(BaseModel):
    """The full contact record; fields left out are cleared."""

    model_config = _STRICT
    email: Email | None = None
    email_verified: bool = True
    phone: Phone | None = None
    phone_verified: bool = True
    locale: Locale | None = None
    timezone: TimeZone | None = None


class DeviceOut(BaseModel):
    id: uuid.UUID
    platform: Platform
    token_preview: str
    active: bool
    created_at: datetime
    last_seen_at: datetime


class RecipientResponse(BaseModel):
    user_id: str
    email: str
    email_verified: bool
    email_bounced: bool
    phone: str
    phone_verified: bool
    locale: str
    timezone: str
    created_at: datetime
    updated_at: datetime
    devices: list[DeviceOut]


# Long enough for FCM, APNs and web-push tokens; short enough for the (user, token) index.
DeviceToken = Annotated[str, Field(min_length=1, max_length=2048)]


class DeviceRequest(BaseModel):
    model_config = _STRICT
    platform: Platform
    token: DeviceToken


class DeviceDeleteRequest(BaseModel):
    model_config = _STRICT
    token: DeviceToken

"""Provider webhooks: proving a request came from the provider, and reading its events.

Each function either returns our :class:`ProviderEvent` list or raises :class:`WebhookForbidden`
(unsigned, forged, stale: answered 403 and nothing is read) or :class:`WebhookMalformed`
(signed but not what the provider sends: answered 400 with the problem). Events the service
has no use for, and events about mail it did not send (no delivery id of ours), are skipped.
Nothing taken from a request that may hold an address (SendGrid's ``email``, bounce texts,
Twilio's ``To``) is kept or logged.
"""

from __future__ import annotations

import binascii
import json
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from config.sharding import parse_routable_id
from delivery.services.provider_events import EventKind, ProviderEvent
from delivery.signals import ADDRESS_REJECTED, PHONE_UNREACHABLE

TWILIO_STATUS_PATH = "/webhooks/twilio/status"
TWILIO_DELIVERY_PARAM = "d"

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


class WebhookError(Exception):
    status = 400
    code = "invalid_request"


class WebhookForbidden(WebhookError):
    status = 403
    code = "forbidden"


class WebhookMalformed(WebhookError):
    status = 400
    code = "invalid_request"


def twilio_status_callback_url(delivery_id: uuid.UUID | str) -> str:
    """The ``status_callback`` to give Twilio for a delivery: our public URL carrying the
    delivery id, so a callback names its delivery (and shard) and Twilio's signature covers it."""
    return f"{settings.PUBLIC_BASE_URL}{TWILIO_STATUS_PATH}?{urlencode({TWILIO_DELIVERY_PARAM: str(delivery_id)})}"


# --- SendGrid ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _sendgrid_verifier(public_key: str) -> EventWebhook:
    return EventWebhook(public_key)


def check_configuration() -> list[str]:
    """Problems with the webhook settings, for start-up (a key that cannot be read would
    refuse every event in silence)."""
    problems = []
    if settings.SENDGRID_WEBHOOK_PUBLIC_KEY:
        try:
            _sendgrid_verifier(settings.SENDGRID_WEBHOOK_PUBLIC_KEY)
        except (ValueError, TypeError):
            problems.append(
                "SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key (copy it from SendGrid's Mail Settings)"
            )
    return problems


def verify_sendgrid(body: bytes, signature: str | None, timestamp: str | None, *, now: float | None = None) -> str:
    """The body as text if SendGrid signed it (ECDSA P-256 over timestamp + body) recently."""
    if not settings.SENDGRID_WEBHOOK_PUBLIC_KEY:
        raise WebhookForbidden("SendGrid event webhooks are not configured (SENDGRID_WEBHOOK_PUBLIC_KEY)")
    if not signature or not timestamp:
        raise WebhookForbidden(
            f"unsigned: the {SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} headers are required"
        )
    if not timestamp.isdigit():
        raise WebhookForbidden(f"{SENDGRID_TIMESTAMP_HEADER} is not a unix time")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > settings.WEBHOOK_MAX_AGE_SECONDS:
        raise WebhookForbidden(f"the signature's timestamp is outside the {settings.WEBHOOK_MAX_AGE_SECONDS} s window")
    try:
        text = body.decode("utf-8")
        valid = _sendgrid_verifier(settings.SENDGRID_WEBHOOK_PUBLIC_KEY).verify_signature(text, signature, timestamp)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        valid = False  # a body or signature SendGrid cannot have produced
    if not valid:
        raise WebhookForbidden("the signature does not match")
    return text


# SendGrid's "reason" for a drop, when it says the address itself is the problem (the other
# reasons are about content or the account). Lower case.
_DROPPED_ADDRESS = {"invalid": ADDRESS_REJECTED, "bounced address": ADDRESS_REJECTED}
_DROPPED_OPT_OUT = {"unsubscribed address": "unsubscribe", "spam reporting address": "spamreport"}
_DROP_REASONS_SHOWN = {
    "invalid",
    "bounced address",
    "unsubscribed address",
    "spam reporting address",
    "invalid smtpapi header",
    "spam content (if spam checker app enabled)",
    "recipient list over package quota",
}
_SMTP_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_SENDGRID_KINDS = {
    "processed": EventKind.ACCEPTED,
    "deferred": EventKind.DEFERRED,
    "delivered": EventKind.DELIVERED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "bounce": EventKind.BOUNCED,
    "dropped": EventKind.FAILED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
}


def sendgrid_events(text: str) -> tuple[list[ProviderEvent], int]:
    """SendGrid's batch as our events, and how many of its events were skipped (types we do
    not track, or mail without one of our delivery ids)."""
    try:
        batch = json.loads(text)
    except ValueError as exc:
        raise WebhookMalformed(f"the body is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(batch, list):
        raise WebhookMalformed("the body must be a JSON array of events")
    events, skipped = [], 0
    for index, item in enumerate(batch):
        if not isinstance(item, dict):
            raise WebhookMalformed(f"[{index}]: each event must be an object")
        name = item.get("event")
        if not isinstance(name, str):
            raise WebhookMalformed(f"[{index}].event: is required and must be a string")
        at = _unix_time(item.get("timestamp"), f"[{index}].timestamp")
        kind = _SENDGRID_KINDS.get(name)
        delivery_id = parse_routable_id(item.get("delivery_id")) if isinstance(item.get("delivery_id"), str) else None
        if kind is None or delivery_id is None:
            skipped += 1
            continue
        events.append(_sendgrid_event(delivery_id, kind, at, item))
    return events, skipped


def _sendgrid_event(delivery_id: uuid.UUID, kind: EventKind, at: datetime, item: dict[str, Any]) -> ProviderEvent:
    fields: dict[str, Any] = {}
    if kind == EventKind.BOUNCED:
        # "blocked": the receiving server refused this message for now (reputation, content),
        # which says nothing about the address.
        blocked = item.get("type") == "blocked"
        smtp = str(item.get("status", ""))
        code = f" ({smtp})" if _SMTP_STATUS.match(smtp) else ""
        fields = {
            "reason": "blocked" if blocked else "bounce",
            "detail": f"{'blocked' if blocked else 'bounced'} by the receiving mail server{code}",
            "address_problem": "" if blocked else ADDRESS_REJECTED,
        }
    elif kind == EventKind.FAILED:
        why = str(item.get("reason", "")).strip().lower()
        fields = {
            "reason": "dropped",
            "detail": f"dropped by SendGrid: {why}" if why in _DROP_REASONS_SHOWN else "dropped by SendGrid",
            "address_problem": _DROPPED_ADDRESS.get(why, ""),
            "opted_out": _DROPPED_OPT_OUT.get(why, ""),
        }
    elif kind == EventKind.COMPLAINED:
        fields = {"opted_out": "spamreport"}
    elif kind == EventKind.UNSUBSCRIBED:
        fields = {"opted_out": "unsubscribe"}
    return ProviderEvent(delivery_id=delivery_id, provider="sendgrid", kind=kind, at=at, **fields)


def _unix_time(value: Any, where: str) -> datetime:
    if value is None:
        return timezone.now()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WebhookMalformed(f"{where}: must be a unix time in seconds")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookMalformed(f"{where}: out of range") from None


# --- Twilio --------------------------------------------------------------------------------


def verify_twilio(full_path: str, params: Any, signature: str | None) -> None:
    """Twilio signed this callback: HMAC-SHA1 with our auth token over the URL Twilio called
    (our public base URL, never the Host header a client sent) and the form parameters."""
    if not settings.TWILIO_AUTH_TOKEN:
        raise WebhookForbidden("Twilio status callbacks are not configured (TWILIO_AUTH_TOKEN)")
    if not signature:
        raise WebhookForbidden(f"unsigned: the {TWILIO_SIGNATURE_HEADER} header is required")
    if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(
        f"{settings.PUBLIC_BASE_URL}{full_path}", params, signature
    ):
        raise WebhookForbidden("the signature does not match")


_TWILIO_KINDS = {
    "accepted": EventKind.ACCEPTED,
    "scheduled": EventKind.ACCEPTED,
    "queued": EventKind.ACCEPTED,
    "sending": EventKind.ACCEPTED,
    "sent": EventKind.ACCEPTED,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.OPENED,  # WhatsApp and RCS read receipts
    "undelivered": EventKind.FAILED,
    "failed": EventKind.FAILED,
}
# Twilio error codes that are about the number itself.
_TWILIO_ADDRESS_ERRORS = {
    "21211": ADDRESS_REJECTED,  # invalid 'To' number
    "30005": ADDRESS_REJECTED,  # unknown destination handset (no such number)
    "30003": PHONE_UNREACHABLE,  # unreachable destination handset
    "30006": PHONE_UNREACHABLE,  # landline or unreachable carrier
    "21614": PHONE_UNREACHABLE,  # not a mobile number
    "21610": PHONE_UNREACHABLE,  # the recipient replied STOP
}
_TWILIO_OPT_OUT = {"21610": "stop"}
_PRICE_UNIT = re.compile(r"^[A-Z]{3}$")


def twilio_event(query: Any, params: Any) -> ProviderEvent | None:
    """A signed status callback as our event; None for a status we do not track or a
    delivery id that is not one of ours."""
    raw_id = query.get(TWILIO_DELIVERY_PARAM)
    if not raw_id:
        raise WebhookMalformed(f"{TWILIO_DELIVERY_PARAM}: the delivery id is missing from the callback URL")
    status = params.get("MessageStatus")
    if not status:
        raise WebhookMalformed("MessageStatus: is required")
    error_code = params.get("ErrorCode") or ""
    if error_code and not error_code.isdigit():
        raise WebhookMalformed("ErrorCode: must be a number")
    details: dict[str, Any] = {}
    if error_code:
        details["error_code"] = error_code
    price, unit = params.get("Price"), params.get("PriceUnit")
    if price:
        try:
            details["price"] = str(Decimal(price))
        except InvalidOperation:
            raise WebhookMalformed("Price: must be a decimal number") from None
        if unit and _PRICE_UNIT.match(unit):
            details["price_unit"] = unit
    kind = _TWILIO_KINDS.get(status)
    delivery_id = parse_routable_id(raw_id)
    if kind is None or delivery_id is None:
        return None
    fields: dict[str, Any] = {}
    if kind == EventKind.FAILED:
        fields = {
            "reason": status,
            "detail": f"Twilio: {status}" + (f" (error {error_code})" if error_code else ""),
            "address_problem": _TWILIO_ADDRESS_ERRORS.get(error_code, ""),
            "opted_out": _TWILIO_OPT_OUT.get(error_code, ""),
        }
    return ProviderEvent(
        delivery_id=delivery_id, provider="twilio", kind=kind, at=timezone.now(), details=details, **fields
    )

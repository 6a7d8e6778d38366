"""SMS through Twilio's Messages API, with the official SDK.

Twilio takes one message per request. Every message carries a status callback URL with our
delivery id, so the status webhook finds the delivery (and its shard) from the URL alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import phonenumbers
import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from delivery.providers.base import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TemporaryDeliveryError,
    retry_after_seconds,
)
from delivery.services.provider_webhooks import twilio_status_callback_url
from delivery.signals import ADDRESS_REJECTED, PHONE_UNREACHABLE

logger = logging.getLogger(__name__)


# Twilio error codes that say the number itself is the problem
# (https://www.twilio.com/docs/api/errors): invalid, or valid but unable to get SMS.
ADDRESS_ERRORS = {
    21211: ADDRESS_REJECTED,  # invalid 'To' phone number
    21217: ADDRESS_REJECTED,  # phone number does not appear to be valid
    21401: ADDRESS_REJECTED,  # invalid phone number
    21614: PHONE_UNREACHABLE,  # 'To' is not a valid mobile number (a landline)
    21610: PHONE_UNREACHABLE,  # the recipient replied STOP
    21612: PHONE_UNREACHABLE,  # cannot route to this number
    21408: PHONE_UNREACHABLE,  # sending to this region is not enabled
}
RATE_LIMITED_CODES = {20429, 14107}  # too many requests; the account's send rate exceeded

# The GSM 03.38 alphabet: a message using only these characters is GSM-7 encoded (160
# characters a segment, 153 when split); the extension characters count twice. Anything else
# makes the whole message UCS-2 (70, then 67, UTF-16 code units a segment).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def segments(text: str) -> tuple[str, int]:
    """(encoding, number of segments) Twilio will bill for ``text``."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        return "GSM-7", 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else -(-units // 67)


def e164(address: str) -> str:
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise PermanentDeliveryError("not a valid phone number in international format", reason=ADDRESS_REJECTED)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_preview(address: str) -> str:
    """Enough of a number for a log line, not enough to identify it."""
    return f"…{address[-2:]}" if len(address) > 2 else "…"


class _HttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sent to ``TWILIO_API_BASE_URL`` when set (a proxy, or the
    test's fake Twilio), with a per-call timeout and the last ``Retry-After`` kept per thread."""

    def __init__(self, *, base_url: str, timeout: float):
        super().__init__(timeout=timeout, logger=logging.getLogger("twilio.http_client"))
        self._base_url = base_url.rstrip("/")
        self._local = threading.local()

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        if self._base_url:
            parts = urlsplit(url)
            url = self._base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        timeout = getattr(self._local, "timeout", None) or timeout
        self._local.retry_after = None
        response = super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
        self._local.retry_after = response.headers.get("Retry-After") if response.headers else None
        return response

    def call_with_timeout(self, timeout: float):
        self._local.timeout = timeout

    @property
    def last_retry_after(self) -> str | None:
        return getattr(self._local, "retry_after", None)


class TwilioProvider:
    name = "twilio"

    def __init__(self, *, channel: str):
        self.channel = channel
        self._http = _HttpClient(base_url=settings.TWILIO_API_BASE_URL, timeout=settings.PROVIDER_TIMEOUT_SECONDS)
        self._client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=self._http)
        sender = settings.TWILIO_FROM
        # A messaging service SID (MG...) lets Twilio pick the sender from its pool.
        self._sender = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}

    @classmethod
    def configuration_problem(cls) -> str | None:
        names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM")
        missing = [name for name in names if not getattr(settings, name)]
        return f"set {', '.join(missing)}" if missing else None

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        # The whole batch stays within one provider timeout (the lease is at least twice it);
        # messages that would start after it wait for a retry instead.
        deadline = time.monotonic() + settings.PROVIDER_TIMEOUT_SECONDS
        results = []
        for message in messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = TemporaryDeliveryError("not sent within the provider timeout", reason="provider_timeout")
                results.append(SendResult(message.delivery_id, error=late))
                continue
            results.append(self._send_one(message, max(remaining, 0.5)))
        return results

    def _send_one(self, message: OutboundMessage, timeout: float) -> SendResult:
        body = message.payload.get("body") or ""
        encoding, count = segments(body)
        try:
            to = e164(message.address)
            self._http.call_with_timeout(timeout)
            created = self._client.messages.create(
                to=to,
                body=body,
                status_callback=status_callback_url(message),
                **self._sender,
            )
        except DeliveryError as error:
            return SendResult(message.delivery_id, error=error)
        except TwilioRestException as error:
            return SendResult(message.delivery_id, error=self._translate(error, message))
        except requests.RequestException as error:
            problem = f"Twilio unreachable ({type(error).__name__})"
            return SendResult(message.delivery_id, error=TemporaryDeliveryError(problem, reason="provider_timeout"))
        details: dict = {"encoding": encoding, "segments": _int(created.num_segments) or count}
        price = _decimal(created.price)
        if price is not None:  # Twilio reports it once known, often only in later callbacks
            details["price"] = str(abs(price))
            details["price_unit"] = created.price_unit or ""
        return SendResult(message.delivery_id, provider_message_id=created.sid or "", details=tuple(details.items()))

    def _translate(self, error: TwilioRestException, message: OutboundMessage) -> DeliveryError:
        detail = f"Twilio answered {error.status}" + (f" (error {error.code})" if error.code else "")
        if error.code in ADDRESS_ERRORS:
            logger.info("twilio refused number %s: error %s", phone_preview(message.address), error.code)
            return PermanentDeliveryError(detail, reason=ADDRESS_ERRORS[error.code])
        if error.status == 429 or error.code in RATE_LIMITED_CODES:
            retry_after = retry_after_seconds(self._http.last_retry_after)
            return TemporaryDeliveryError(detail, reason="rate_limited", retry_after=retry_after)
        if error.status >= 500 or error.status == 408:
            return TemporaryDeliveryError(detail, reason="provider_unavailable")
        if error.status in (401, 403):
            return PermanentDeliveryError(detail, reason="provider_auth_failed")
        return PermanentDeliveryError(detail, reason="rejected_by_provider")


def status_callback_url(message: OutboundMessage) -> str:
    return twilio_status_callback_url(message.delivery_id)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None

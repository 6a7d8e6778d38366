"""Email through SendGrid's v3 mail send API, with the official SDK.

Messages whose rendered content is the same (a campaign: same subject, text and HTML) go in
one request, one personalization each, so SendGrid does the fan-out; each personalization
carries its own recipient, headers (``List-Unsubscribe`` differs per user) and our delivery
id in ``custom_args`` (how the event webhook finds the delivery again).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from delivery.providers.base import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TemporaryDeliveryError,
    retry_after_seconds,
)
from delivery.signals import ADDRESS_REJECTED

logger = logging.getLogger(__name__)

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request
INVALID_HEADER = "invalid_header"
PAYLOAD_TOO_LARGE = "payload_too_large"


def _headers(payload: dict[str, Any]) -> dict[str, str]:
    """The payload's extra headers, refused whole if any could inject another header."""
    headers = payload.get("headers") or {}
    if not isinstance(headers, dict):
        raise PermanentDeliveryError("headers must be an object", reason=INVALID_HEADER)
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name.strip():
            raise PermanentDeliveryError("header names and values must be text", reason=INVALID_HEADER)
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise PermanentDeliveryError(f"header {name[:40]!r} contains a line break", reason=INVALID_HEADER)
    return headers


def _content(payload: dict[str, Any]) -> list[dict[str, str]]:
    # text/plain must come first (SendGrid refuses another order); both when the template has HTML.
    parts = [("text/plain", payload.get("text") or ""), ("text/html", payload.get("html") or "")]
    content = [{"type": kind, "value": value} for kind, value in parts if value]
    if not content:
        raise PermanentDeliveryError("the rendered email has neither text nor HTML", reason="empty_content")
    return content


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, *, channel: str):
        self.channel = channel
        self._client = SendGridAPIClient(api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST)

    @classmethod
    def configuration_problem(cls) -> str | None:
        missing = [name for name in ("SENDGRID_API_KEY", "SENDGRID_FROM_EMAIL") if not getattr(settings, name)]
        return f"set {', '.join(missing)}" if missing else None

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        groups: dict[str, list[tuple[OutboundMessage, dict]]] = defaultdict(list)
        for message in messages:
            try:
                personalization = {
                    "to": [{"email": message.address}],
                    "custom_args": {"delivery_id": str(message.delivery_id)},
                }
                headers = _headers(message.payload)
                if headers:
                    personalization["headers"] = headers
                content = {"subject": message.payload.get("subject") or "", "content": _content(message.payload)}
            except DeliveryError as error:
                results.append(SendResult(message.delivery_id, error=error))
                continue
            groups[json.dumps(content, sort_keys=True)].append((message, personalization))
        # The whole batch stays within one provider timeout (the lease is at least twice it):
        # requests that would start after it wait for a retry instead.
        deadline = time.monotonic() + settings.PROVIDER_TIMEOUT_SECONDS
        for key, members in groups.items():
            content = json.loads(key)
            for start in range(0, len(members), MAX_PERSONALIZATIONS):
                chunk = members[start : start + MAX_PERSONALIZATIONS]
                if time.monotonic() >= deadline:
                    late = TemporaryDeliveryError("not sent within the provider timeout", reason="provider_timeout")
                    results.extend(SendResult(m.delivery_id, error=late) for m, _ in chunk)
                    continue
                results.extend(self._send_group(content, chunk, deadline=deadline))
        return results

    def _send_group(
        self, content: dict, members: list[tuple[OutboundMessage, dict]], *, deadline: float, again: bool = True
    ) -> list[SendResult]:
        """One request for messages with the same content. A 400 naming some personalizations'
        addresses rejects those; nothing was sent, so the others go once more (and wait for a
        retry if that is refused too)."""
        try:
            message_id = self._post(content, [p for _, p in members], deadline)
        except _AddressesRejected as rejected:
            error = PermanentDeliveryError("SendGrid rejected the address", reason=ADDRESS_REJECTED)
            results = [
                SendResult(m.delivery_id, error=error) for i, (m, _) in enumerate(members) if i in rejected.indexes
            ]
            rest = [member for i, member in enumerate(members) if i not in rejected.indexes]
            if rest and again:
                results.extend(self._send_group(content, rest, deadline=deadline, again=False))
            elif rest:
                held = TemporaryDeliveryError("batch refused for another recipient's address", reason="batch_refused")
                results.extend(SendResult(m.delivery_id, error=held) for m, _ in rest)
            return results
        except DeliveryError as error:
            return [SendResult(m.delivery_id, error=error) for m, _ in members]
        return [SendResult(m.delivery_id, provider_message_id=message_id) for m, _ in members]

    def _post(self, content: dict, personalizations: list[dict], deadline: float) -> str:
        body = {
            "personalizations": personalizations,
            "from": {"email": settings.SENDGRID_FROM_EMAIL},
            **content,
        }
        try:
            response = self._client.client.mail.send.post(
                request_body=body, timeout=max(deadline - time.monotonic(), 0.5)
            )
        except http_errors.HTTPError as error:
            raise _translate(error, len(personalizations)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
            # No address in the message: only the kind of failure.
            raise TemporaryDeliveryError(
                f"SendGrid unreachable ({type(error).__name__})", reason="provider_timeout"
            ) from None
        headers = response.headers or {}
        return headers.get("X-Message-Id", "") or ""


class _AddressesRejected(DeliveryError):
    def __init__(self, indexes: set[int]):
        super().__init__("addresses rejected")
        self.indexes = indexes


def _error_messages(body: bytes | str) -> tuple[list[str], set[int]]:
    """SendGrid's error messages, and the personalizations whose address they name
    (``field: personalizations.3.to.0.email``)."""
    try:
        errors = json.loads(body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return [], set()
    messages, indexes = [], set()
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        messages.append(str(item.get("message") or "")[:200])
        parts = str(item.get("field") or "").split(".")
        if len(parts) >= 2 and parts[0] == "personalizations" and parts[1].isdigit() and "email" in parts[-1]:
            indexes.add(int(parts[1]))
    return messages, indexes


def _translate(error: http_errors.HTTPError, count: int) -> DeliveryError:
    status = error.status_code
    messages, indexes = _error_messages(error.body)
    detail = f"SendGrid answered {status}" + (f": {'; '.join(messages)}" if messages else "")
    if status == 429:
        return TemporaryDeliveryError(detail, reason="rate_limited", retry_after=_rate_limit_wait(error.headers or {}))
    if status >= 500 or status == 408:
        return TemporaryDeliveryError(detail, reason="provider_unavailable")
    if status == 400 and indexes and all(i < count for i in indexes):
        return _AddressesRejected(indexes)
    if status == 413:
        return PermanentDeliveryError(detail, reason=PAYLOAD_TOO_LARGE)
    if status in (401, 403):
        return PermanentDeliveryError(detail, reason="provider_auth_failed")
    return PermanentDeliveryError(detail, reason="rejected_by_provider")


def _rate_limit_wait(headers) -> float | None:
    """SendGrid's ``Retry-After`` if given, else the wait until ``X-RateLimit-Reset`` (the
    epoch second its rate-limit window ends, which is what it usually sends)."""
    wait = retry_after_seconds(headers.get("Retry-After"))
    if wait is not None:
        return wait
    try:
        reset = float(headers.get("X-RateLimit-Reset") or "")
    except ValueError:
        return None
    return retry_after_seconds(str(max(reset - time.time(), 0.0)))

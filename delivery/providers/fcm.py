"""Push through Firebase Cloud Messaging (HTTP v1), with the official ``firebase-admin`` SDK.

A delivery goes to every active device of its user (Android, iOS and web tokens alike: FCM
routes them), each device a target with its own outcome. ``send_each`` takes at most 500
messages, so a batch's (delivery, token) pairs go in chunks of 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import firebase_admin
from django.conf import settings
from firebase_admin import credentials, exceptions, messaging
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from delivery.providers.base import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TargetResult,
    TemporaryDeliveryError,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

APP_NAME = "notify-fcm"
CHUNK = 500  # send_each's limit
MAX_PAYLOAD_BYTES = 4096  # FCM's limit for a message's notification and data
FCM_ORIGIN = "https://fcm.googleapis.com"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNREGISTERED = "unregistered"  # the app was uninstalled or the token expired
INVALID_TOKEN = "invalid_token"  # not a token FCM (or this project) knows

_app_lock = threading.Lock()

# firebase-admin 7 deprecates Message.token for Firebase installation ids (fid), but the
# devices register FCM registration tokens, which FCM v1 still takes as ``token``.
warnings.filterwarnings("ignore", message="Message.token is deprecated", category=DeprecationWarning)


def firebase_app() -> firebase_admin.App:
    """This process's Firebase app, from the service-account file in FIREBASE_CREDENTIALS."""
    with _app_lock:
        try:
            return firebase_admin.get_app(APP_NAME)
        except ValueError:
            pass
        app = firebase_admin.initialize_app(
            credentials.Certificate(settings.FIREBASE_CREDENTIALS),
            options={"httpTimeout": settings.PROVIDER_TIMEOUT_SECONDS},
            name=APP_NAME,
        )
        _bound_sdk_retries(app)
        return app


def _bound_sdk_retries(app: firebase_admin.App) -> None:
    """The SDK retries a 500/503 four times with backoff and sleeps for any ``Retry-After``,
    which could hold a batch past its lease. Our own retry policy (and circuit breaker) decide
    instead: only a failed connection, where nothing was sent, is retried at once. The SDK has
    no option for it, so its session for the FCM origin gets a bounded adapter."""
    service = messaging._get_messaging_service(app)
    session = getattr(getattr(service, "_client", None), "session", None)
    if session is None:  # another SDK version: its own retries stay (and the timeout still holds)
        logger.warning("firebase-admin's HTTP session was not found; its own retries stay on")
        return
    # read=False: a read timeout surfaces as a timeout (the SDK's DeadlineExceededError).
    retry = Retry(
        total=1, connect=1, read=False, status=0, other=0, allowed_methods=None, respect_retry_after_header=False
    )
    session.mount(FCM_ORIGIN, HTTPAdapter(pool_connections=10, pool_maxsize=100, max_retries=retry))


def _platforms(message: OutboundMessage) -> dict:
    """The same message for Android, iOS and the web (a token's platform is FCM's business):
    critical and high priority wake the device, the others may wait for it; a web push
    opens the action URL when clicked (FCM takes only HTTPS links)."""
    urgent = message.priority in ("critical", "high")
    url = message.payload.get("action_url") or ""
    return {
        "android": messaging.AndroidConfig(priority="high" if urgent else "normal"),
        "apns": messaging.APNSConfig(headers={"apns-priority": "10" if urgent else "5"}),
        "webpush": messaging.WebpushConfig(
            headers={"Urgency": "high" if urgent else "normal"},
            fcm_options=messaging.WebpushFCMOptions(link=url) if url.startswith("https://") else None,
        ),
    }


def _messages(message: OutboundMessage, tokens: Sequence[str]) -> list[messaging.Message]:
    title, body = message.payload.get("title") or None, message.payload.get("body") or None
    notification = messaging.Notification(title=title, body=body) if title or body else None
    data, platforms = _data(message), _platforms(message)
    return [messaging.Message(token=token, notification=notification, data=data, **platforms) for token in tokens]


def _data(message: OutboundMessage) -> dict[str, str]:
    # FCM data values are strings; the delivery id lets the app report opens back.
    data = {"delivery_id": str(message.delivery_id)}
    if message.payload.get("action_url"):
        data["action_url"] = message.payload["action_url"]
    return data


def payload_size(message: OutboundMessage) -> int:
    """Bytes of what FCM counts against its 4 KB limit: the notification and the data."""
    notification = {k: message.payload.get(k) for k in ("title", "body") if message.payload.get(k)}
    return len(json.dumps({"notification": notification, "data": _data(message)}, separators=(",", ":")).encode())


class FcmProvider:
    name = "fcm"

    def __init__(self, *, channel: str):
        self.channel = channel
        self._app = firebase_app()

    @classmethod
    def configuration_problem(cls) -> str | None:
        path = settings.FIREBASE_CREDENTIALS
        if not path:
            return "set FIREBASE_CREDENTIALS to the path of a Firebase service-account JSON file"
        try:
            credentials.Certificate(path)
        except (OSError, ValueError) as error:
            return f"FIREBASE_CREDENTIALS ({path}) is not a readable service-account file: {type(error).__name__}"
        return None

    def is_available(self) -> bool:
        return True

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        pending: list[_Target] = []
        for message in messages:
            if payload_size(message) > MAX_PAYLOAD_BYTES:
                error = PermanentDeliveryError(f"push payload over {MAX_PAYLOAD_BYTES} bytes", reason=PAYLOAD_TOO_LARGE)
                results.append(SendResult(message.delivery_id, error=error))
            else:
                tokens = message.device_tokens
                pending.extend(map(_Target, [message] * len(tokens), tokens, _messages(message, tokens)))
        targets: dict[object, list[TargetResult]] = {}
        # The whole batch stays within one provider timeout (the lease is at least twice it);
        # chunks that would start after it wait for a retry instead.
        deadline = time.monotonic() + settings.PROVIDER_TIMEOUT_SECONDS
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            if time.monotonic() < deadline:
                outcomes = self._send_chunk(chunk)
            else:
                late = TemporaryDeliveryError("not sent within the provider timeout", reason="provider_timeout")
                outcomes = [TargetResult(target.token, error=late) for target in chunk]
            for target, outcome in zip(chunk, outcomes, strict=True):
                targets.setdefault(target.message.delivery_id, []).append(outcome)
        for message in messages:
            if message.delivery_id in targets:
                results.append(_result(message, tuple(targets[message.delivery_id])))
        return results

    def _send_chunk(self, chunk: list[_Target]) -> list[TargetResult]:
        try:
            batch = messaging.send_each([target.fcm_message for target in chunk], app=self._app)
        except exceptions.FirebaseError as error:  # the whole call failed (e.g. no OAuth token)
            failure = _translate(error)
            return [TargetResult(target.token, error=failure) for target in chunk]
        except ValueError as error:  # the SDK's own validation refused a message of the chunk
            logger.error("firebase-admin refused a push message: %s", type(error).__name__)
            failure = PermanentDeliveryError("FCM message refused by the SDK's validation", reason="invalid_message")
            return [TargetResult(target.token, error=failure) for target in chunk]
        return [
            TargetResult(target.token, provider_message_id=response.message_id or "")
            if response.success
            else TargetResult(target.token, error=_translate(response.exception))
            for target, response in zip(chunk, batch.responses, strict=True)
        ]


class _Target(NamedTuple):
    message: OutboundMessage
    token: str
    fcm_message: messaging.Message


def _result(message: OutboundMessage, targets: tuple[TargetResult, ...]) -> SendResult:
    """Sent when one device got it. When none did the message carries the error too (a
    temporary one first, so it is retried), which is what the circuit breaker counts."""
    delivered = [t for t in targets if t.ok]
    if delivered:
        return SendResult(message.delivery_id, delivered[0].provider_message_id, targets=targets)
    errors = [t.error for t in targets if t.error is not None]
    temporary = next((e for e in errors if isinstance(e, TemporaryDeliveryError)), None)
    return SendResult(message.delivery_id, error=temporary or errors[0], targets=targets)


def _translate(error: Exception | None) -> DeliveryError:
    # The SDK's messages may quote the token: only its class and code go into ours.
    code = getattr(error, "code", "") or ""
    detail = f"FCM: {type(error).__name__}" + (f" ({code})" if code else "")
    if isinstance(error, messaging.UnregisteredError):
        return PermanentDeliveryError(detail, reason=UNREGISTERED)
    if isinstance(error, messaging.SenderIdMismatchError | exceptions.InvalidArgumentError):
        return PermanentDeliveryError(detail, reason=INVALID_TOKEN)
    if isinstance(error, exceptions.ResourceExhaustedError):
        response = getattr(error, "http_response", None)
        retry_after = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
        return TemporaryDeliveryError(detail, reason="rate_limited", retry_after=retry_after)
    if isinstance(
        error, messaging.ThirdPartyAuthError | exceptions.UnauthenticatedError | exceptions.PermissionDeniedError
    ):
        return PermanentDeliveryError(detail, reason="provider_auth_failed")
    if isinstance(error, exceptions.DeadlineExceededError):
        return TemporaryDeliveryError(detail, reason="provider_timeout")
    # Unavailable, internal, deadline exceeded, unknown (an OAuth failure, a broken connection).
    return TemporaryDeliveryError(detail, reason="provider_unavailable")

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string


class DeliveryError(Exception):
    """A provider could not send a message. ``reason`` is a short machine-readable code."""

    reason = "provider_error"

    def __init__(self, message: str = "", *, reason: str | None = None):
        super().__init__(message or self.reason)
        if reason:
            self.reason = reason


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later (timeouts, 429, 5xx, provider unavailable). The only error that retries.

    ``retry_after`` is the provider's own ``Retry-After`` in seconds, when it sent one: the
    next attempt waits at least that long (the channel's backoff still applies if longer).
    """

    reason = "temporary_failure"

    def __init__(self, message: str = "", *, reason: str | None = None, retry_after: float | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after if retry_after is None or retry_after >= 0 else None


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (invalid address, rejected content, unregistered device)."""

    reason = "rejected"


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the form SendGrid and Twilio use); None if absent or odd."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 24 * 3600 else None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    delivery_id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    priority: str
    address: str  # email address or E.164 phone; empty for push and in-app
    payload: dict[str, Any]
    device_tokens: tuple[str, ...] = ()  # push only
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        """What a provider that deduplicates (an idempotency header, SendGrid ``custom_args``)
        should be given: the same on every attempt of this delivery, so a retry after a worker
        died mid-send can be recognized by the provider as the same message."""
        return str(self.delivery_id)


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The outcome for one target of a message: a device token of a push message (one
    message goes to every active device of the user, each with its own outcome)."""

    target: str
    provider_message_id: str = ""
    error: DeliveryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class SendResult:
    """One message's outcome. A message with ``targets`` is sent when at least one target
    succeeded; ``details`` carries what the provider reported worth keeping (SMS segments,
    price). A provider's ``Retry-After`` travels on the error
    (:attr:`TemporaryDeliveryError.retry_after`)."""

    delivery_id: uuid.UUID
    provider_message_id: str = ""
    error: DeliveryError | None = None
    targets: tuple[TargetResult, ...] = ()
    details: tuple[tuple[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Provider(Protocol):
    """A provider sends one channel's messages to the outside world. One module per provider
    (modelled on Django's email backends); the registry builds one instance per process.

    ``send`` must finish within ``settings.PROVIDER_TIMEOUT_SECONDS`` per call to the
    provider's API (the delivery lease is longer, so a slow provider never lets a batch be
    claimed twice); only :class:`TemporaryDeliveryError` is retried.
    """

    name: str
    channel: str

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send a batch; one result per message, in any order.

        Raise :class:`TemporaryDeliveryError` when the whole batch failed in a way worth
        retrying (429, 5xx, timeout), :class:`PermanentDeliveryError` when the provider refused
        the whole batch; report per-message (and per-target) failures in the results.
        """

    def is_available(self) -> bool:
        """False while the provider should not be called (e.g. its circuit is open)."""


def configuration_problem(provider_class) -> str | None:
    """What keeps a provider class from working with the current settings (missing
    credentials), or None. Providers declare it as a ``configuration_problem`` classmethod."""
    check = getattr(provider_class, "configuration_problem", None)
    return check() if callable(check) else None


def _resolve(name_or_path: str) -> type:
    path = settings.NOTIFY_PROVIDER_CLASSES.get(name_or_path, name_or_path)
    return import_string(path)


_providers: dict[tuple[str, str], Provider] = {}
_lock = threading.Lock()


def providers_for(channel: str) -> list[Provider]:
    """The channel's providers in order of preference (the next one takes over while the
    first is unavailable)."""
    names = settings.NOTIFY_PROVIDERS[channel]
    if isinstance(names, str):
        names = [names]
    found = []
    with _lock:
        for name in names:
            key = (channel, name)
            provider = _providers.get(key)
            if provider is None:
                provider = _providers[key] = _resolve(name)(channel=channel)
            found.append(provider)
    return found


def provider_for(channel: str) -> Provider:
    return providers_for(channel)[0]


def check_configuration() -> list[str]:
    """Every configured provider that cannot work (for start-up checks)."""
    problems = []
    for channel, names in settings.NOTIFY_PROVIDERS.items():
        for name in [names] if isinstance(names, str) else names:
            try:
                problem = configuration_problem(_resolve(name))
            except ImportError as exc:
                problem = f"cannot be loaded ({exc})"
            if problem:
                problems.append(f"{channel} provider {name!r}: {problem}")
    return problems


def reset_providers() -> None:
    with _lock:
        _providers.clear()

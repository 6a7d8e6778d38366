from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

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
    """Worth retrying later (timeouts, 429, 5xx, provider unavailable). The only error that retries."""

    reason = "temporary_failure"


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (invalid address, rejected content, unregistered device)."""

    reason = "rejected"


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


@dataclass(frozen=True, slots=True)
class SendResult:
    delivery_id: uuid.UUID
    provider_message_id: str = ""
    error: DeliveryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Provider(Protocol):
    name: str
    channel: str

    def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send a batch; one result per message, in any order.

        Raise :class:`TemporaryDeliveryError` when the whole batch failed in a way worth
        retrying; report per-message failures in the results.
        """

    def is_available(self) -> bool:
        """False while the provider should not be called (e.g. its circuit is open)."""


_providers: dict[tuple[str, str], Provider] = {}
_lock = threading.Lock()


def provider_for(channel: str) -> Provider:
    path = settings.NOTIFY_PROVIDERS[channel]
    key = (channel, path)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = import_string(path)(channel=channel)
    return provider


def reset_providers() -> None:
    with _lock:
        _providers.clear()

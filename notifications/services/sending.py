"""What the send service takes and gives back, independent of HTTP.

The API turns a request body into :class:`SendRequest` objects; a campaign, a scheduled
release or the admin's "send a test" build them directly. Every caller names a
:class:`Sender`, which decides what may be sent and scopes idempotency keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifications.errors import DomainError
from notifications.models import ApiScope
from notifications.services.catalog import ClientInfo


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sends: an API client, a campaign or the system itself.

    ``key`` is stored on every notification (``client:12``, ``campaign:7``, ``system:admin``);
    idempotency keys are unique per sender.
    """

    key: str
    name: str
    allowed_types: frozenset[str] | None = None  # None: every type
    may_send_critical: bool = False
    may_update_contacts: bool = False
    label: str = "this sender"  # how refusals name it: "this API key may not send ..."

    def may_send_type(self, type_key: str) -> bool:
        return self.allowed_types is None or type_key in self.allowed_types

    @classmethod
    def for_client(cls, client: ClientInfo) -> Sender:
        return cls(
            key=client_sender_key(client.id),
            name=client.name,
            allowed_types=client.allowed_types,
            may_send_critical=client.may_send_critical,
            may_update_contacts=ApiScope.RECIPIENTS in client.scopes,
            label="this API key",
        )

    @classmethod
    def campaign(cls, campaign_id: int, name: str) -> Sender:
        return cls(key=f"campaign:{campaign_id}", name=name, label="this campaign")

    @classmethod
    def system(cls, name: str, *, may_send_critical: bool = True) -> Sender:
        return cls(key=f"system:{name}", name=name, may_send_critical=may_send_critical)


def client_sender_key(client_id: int) -> str:
    return f"client:{client_id}"


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """Contact fields given with a send; those not None are stored on the recipient."""

    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(slots=True)  # not frozen: a bulk request builds 1000 (frozen init costs 3x)
class SendRequest:
    user_id: str
    type_key: str
    idempotency_key: str
    data: Mapping[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] | None = None  # None: the type's default channels
    priority: str | None = None  # None: the type's default priority
    send_at: datetime | None = None  # None: now
    contact: ContactUpdate | None = None


@dataclass(slots=True)
class ChannelPlan:
    channel: str
    status: str  # queued, scheduled, standby (a fallback) or skipped
    reason: str = ""


DUPLICATE = "duplicate"


@dataclass(slots=True)
class SendResult:
    """One request item's answer: a notification (new or the one its key already made) or an
    error that concerns this item only (its key conflicts, its shard is down)."""

    notification_id: uuid.UUID | None = None
    outcome: str | None = None
    channels: list[ChannelPlan] | None = None
    error: DomainError | None = None

    @property
    def created(self) -> bool:
        return self.error is None and self.outcome != DUPLICATE

    @property
    def duplicate(self) -> bool:
        return self.error is None and self.outcome == DUPLICATE

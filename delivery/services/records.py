"""Delivery rows as the send pipeline plans them, written in bulk."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from django.conf import settings

from config.bulk import Rows, json_text
from delivery.models import Delivery, DeliveryStatus

_COLUMNS = (
    "id",
    "notification_id",
    "user_id",
    "channel",
    "priority",
    "status",
    "reason",
    "address",
    "payload",
    "attempts",
    "next_attempt_at",
    "published_at",
    "republish_at",
    "provider",
    "provider_message_id",
    "last_error",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    priority: str
    status: str  # queued, scheduled or skipped
    reason: str = ""
    address: str = ""
    payload: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None

    @property
    def publish_now(self) -> bool:
        return self.status == DeliveryStatus.QUEUED


def delivery_rows(planned: Sequence[PlannedDelivery], now: datetime) -> Rows:
    """Planned deliveries as rows to insert inside the send transaction.

    Queued rows are stamped published now (the publish follows the commit) and get a
    republish deadline: if nothing has picked them up by then — the process died between
    commit and publish, the broker lost the message, a worker failed before claiming — the
    sweep publishes them again. A failed publish moves the deadline to now.
    """
    republish_at = now + timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS)
    return Rows(
        Delivery,
        _COLUMNS,
        [
            (
                p.id,
                p.notification_id,
                p.user_id,
                p.channel,
                p.priority,
                p.status,
                p.reason,
                p.address,
                json_text(p.payload or {}),
                0,
                p.next_attempt_at,
                now if p.status == DeliveryStatus.QUEUED else None,
                republish_at if p.status == DeliveryStatus.QUEUED else None,
                "",
                "",
                "",
                now,
                now,
            )
            for p in planned
        ],
    )



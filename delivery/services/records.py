"""Delivery rows as the send pipeline plans them, written in bulk."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from config.bulk import Rows, RowSpec, json_text
from delivery.models import Delivery, DeliveryStatus

DELIVERY_ROW = RowSpec(
    Delivery,
    defaults={
        "attempts": 0,
        "lease_token": None,
        "lease_expires_at": None,
        "lease_owner": "",
        "provider": "",
        "provider_message_id": "",
        "last_error": "",
        "sent_at": None,
        "handed_at": None,
        "possibly_duplicated": False,
        "provider_details": json_text({}),
    },
)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more
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

    Queued rows are stamped published now (the publish follows the commit). If the publish
    fails they are marked unpublished and the sweep publishes them within a second; if the
    broker later loses them, the sweep notices (see ``delivery.services.sweep``);
    ``republish_at`` is only the backstop for what neither catches.
    """
    republish_at = now + timedelta(seconds=settings.STUCK_QUEUED_AFTER_SECONDS)
    build = DELIVERY_ROW.row
    rows = []
    for p in planned:
        queued = p.status == DeliveryStatus.QUEUED
        rows.append(
            build(
                id=p.id,
                notification_id=p.notification_id,
                user_id=p.user_id,
                channel=p.channel,
                priority=p.priority,
                status=p.status,
                reason=p.reason,
                address=p.address,
                payload=json_text(p.payload or {}),
                next_attempt_at=p.next_attempt_at,
                published_at=now if queued else None,
                republish_at=republish_at if queued else None,
                created_at=now,
                updated_at=now,
            )
        )
    return DELIVERY_ROW.rows(rows)

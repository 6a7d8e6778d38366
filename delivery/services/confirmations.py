"""Deliveries confirmed by their recipient's side after the provider took them: ``sent``
becomes ``delivered`` (never the other way, so a late or repeated confirmation is harmless)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.utils import timezone

from delivery.models import Delivery, DeliveryStatus


def confirm_delivered(alias: str, channel: str, notification_ids: Iterable[uuid.UUID | str]) -> int:
    """The user's app acknowledged these notifications on ``channel``; returns rows changed."""
    return (
        Delivery.objects.using(alias)
        .filter(notification_id__in=list(notification_ids), channel=channel, status=DeliveryStatus.SENT)
        .update(status=DeliveryStatus.DELIVERED, updated_at=timezone.now())
    )

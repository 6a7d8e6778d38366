"""Reading delivery state: per-channel summaries and a notification's overall status."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings

from delivery.models import FAILURE_STATUSES, PENDING_STATUSES, SUCCESS_STATUSES, Delivery, DeliveryStatus

_CHANNEL_ORDER = {channel: i for i, channel in enumerate(settings.CHANNELS)}


def overall_status(statuses: Iterable[str]) -> str:
    """scheduled | in_progress | sent | partially_sent | failed | skipped."""
    statuses = list(statuses)
    pending = [s for s in statuses if s in PENDING_STATUSES]
    if pending:
        return "scheduled" if all(s == DeliveryStatus.SCHEDULED for s in pending) else "in_progress"
    succeeded = any(s in SUCCESS_STATUSES for s in statuses)
    failed = any(s in FAILURE_STATUSES for s in statuses)
    if succeeded and failed:
        return "partially_sent"
    if succeeded:
        return "sent"
    if failed:
        return "failed"
    return "skipped"


def deliveries_of(alias: str, notification_id: uuid.UUID) -> list[Delivery]:
    rows = list(Delivery.objects.using(alias).filter(notification_id=notification_id))
    rows.sort(key=lambda d: _CHANNEL_ORDER.get(d.channel, 99))
    return rows


def channel_summaries(alias: str, notification_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, str]]]:
    summaries: dict[uuid.UUID, list[dict[str, str]]] = defaultdict(list)
    rows = (
        Delivery.objects.using(alias)
        .filter(notification_id__in=notification_ids)
        .values_list("notification_id", "channel", "status", "reason")
    )
    for notification_id, channel, status, reason in sorted(rows, key=lambda r: _CHANNEL_ORDER.get(r[1], 99)):
        summaries[notification_id].append({"channel": channel, "status": status, "reason": reason})
    return summaries


def deliveries_by_notification(alias: str, notification_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Delivery]]:
    """The deliveries of several notifications of one shard, in one query, in channel order."""
    grouped: dict[uuid.UUID, list[Delivery]] = defaultdict(list)
    rows = Delivery.objects.using(alias).filter(notification_id__in=notification_ids)
    for delivery in sorted(rows, key=lambda d: _CHANNEL_ORDER.get(d.channel, 99)):
        grouped[delivery.notification_id].append(delivery)
    return grouped

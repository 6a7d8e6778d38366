"""Send again what failed: failed and dead-lettered deliveries go back to the queue."""

from __future__ import annotations

from typing import Sequence

from django.utils import timezone

from delivery.models import Delivery, DeliveryStatus

REPLAYABLE = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)


def requeue(alias: str, delivery_ids: Sequence) -> int:
    """Requeue those of ``delivery_ids`` that failed; the sweep publishes them within a second.

    Attempts start over, so a replayed delivery gets its channel's full retry policy again.
    """
    return (
        Delivery.objects.using(alias)
        .filter(id__in=delivery_ids, status__in=REPLAYABLE)
        .update(
            status=DeliveryStatus.QUEUED,
            published_at=None,
            attempts=0,
            next_attempt_at=None,
            reason="",
            updated_at=timezone.now(),
        )
    )

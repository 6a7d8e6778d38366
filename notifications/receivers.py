"""What notifications does when delivery tells it something (delivery imports no other app)."""

from __future__ import annotations

from collections import defaultdict

from django.dispatch import receiver

from delivery.signals import inapp_published
from notifications.services import inbox


@receiver(inapp_published)
def _mark_inbox_delivered(messages, **kwargs) -> None:
    by_user: dict[str, list] = defaultdict(list)
    for message in messages:
        by_user[message.user_id].append(message.notification_id)
    for user_id, ids in by_user.items():
        inbox.mark_delivered(user_id, ids)

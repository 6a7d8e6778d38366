"""Queue names, all derived from settings: ``<channel>.<priority>`` per channel, core and maintenance."""

from __future__ import annotations

from django.conf import settings


def delivery_queue(channel: str, priority: str) -> str:
    return f"{settings.QUEUE_PREFIX}{channel}.{priority}"


def channel_queues(channel: str) -> list[str]:
    """A channel's queues in strict consumption order, critical first."""
    return [delivery_queue(channel, priority) for priority in settings.PRIORITIES]


def all_queues() -> list[str]:
    """Every queue, each channel's critical queue before anything of lower priority."""
    queues = [delivery_queue(channel, priority) for priority in settings.PRIORITIES for channel in settings.CHANNELS]
    return [*queues, settings.CORE_QUEUE, settings.MAINTENANCE_QUEUE]

"""Thin Celery entry points; the work is in delivery.services."""

from django.conf import settings

from config.celery import project_task
from delivery.services import dispatch, sweep


@project_task("delivery.drain")
def drain(alias: str, channel: str, priority: str) -> None:
    dispatch.drain(alias, channel, priority)


@project_task("delivery.deliver_batch")
def deliver_batch(delivery_ids: list[str]) -> None:
    """Send these deliveries (tasks published before doorbells existed, and tools)."""
    dispatch.deliver_batch(delivery_ids)


@project_task("delivery.sweep_shard", queue=settings.MAINTENANCE_QUEUE)
def sweep_shard(alias: str) -> None:
    sweep.sweep_shard(alias)

"""Thin Celery entry points; the work is in delivery.services."""

from config.celery import project_task
from delivery.services import dispatch, sweep


@project_task("delivery.deliver_batch")
def deliver_batch(delivery_ids: list[str]) -> None:
    dispatch.deliver_batch(delivery_ids)


@project_task("delivery.sweep")
def sweep_deliveries() -> None:
    sweep.sweep()

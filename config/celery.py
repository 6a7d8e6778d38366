"""The Celery application and the one decorator every project task uses."""

from __future__ import annotations

import os
from typing import Any, Callable

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("notify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _tune_worker_process(**kwargs: Any) -> None:
    from config.runtime import freeze_startup_objects

    freeze_startup_objects()


def project_task(name: str, *, queue: str | None = None, **options: Any) -> Callable:
    """Register a task under a stable ``name``.

    Tasks take IDs, never model objects; nobody reads task results, so none are stored.
    Delivery is at-least-once (late ack, requeue when the worker process dies): task bodies
    must be safe to run twice, which the delivery claim guarantees.
    """

    def decorate(func: Callable) -> Any:
        from django.conf import settings

        return app.task(
            name=name,
            queue=queue or settings.CORE_QUEUE,
            ignore_result=True,
            acks_late=True,
            reject_on_worker_lost=True,
            **options,
        )(func)

    return decorate

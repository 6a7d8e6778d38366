"""The Celery application and the one decorator every project task uses."""

from __future__ import annotations

import functools
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import celery.app.amqp
import kombu
import kombu.exceptions
import redis.exceptions
from celery import Celery
from celery.beat import PersistentScheduler
from celery.exceptions import Reject
from celery.signals import task_postrun, task_prerun, worker_process_init
from django.db import InterfaceError, OperationalError, close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)


class BrokerConnection(kombu.Connection):
    """kombu's connection, trying a lost broker again at a steady pace.

    A worker's consumer and beat reconnect through ``ensure_connection`` with kombu's default
    pauses: 2 s, then 2 s longer after each failure, up to 30 s. A broker back after half a
    minute was noticed up to 12 s later (after a few minutes, up to 30 s): past the 10 s in
    which critical deliveries are due once it is back. Here the pause grows from 1 s to 2 s.
    Callers that pass their own pauses (publishing: see CELERY_BROKER_TRANSPORT_OPTIONS) keep them.
    """

    def ensure_connection(
        self, errback=None, max_retries=None, interval_start=1.0, interval_step=0.5, interval_max=2.0, **kwargs
    ):
        return super().ensure_connection(errback, max_retries, interval_start, interval_step, interval_max, **kwargs)


class AMQP(celery.app.amqp.AMQP):
    Connection = BrokerConnection


app = Celery("notify", amqp=AMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Errors of the infrastructure, not of the task: the same task succeeds once the database or
# the broker (or the Redis behind the cache) is back.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


class BeatScheduler(PersistentScheduler):
    """Celery's file-backed schedule, whose directory (under VAR_DIR) a fresh deployment lacks."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


@worker_process_init.connect
def _tune_worker_process(**kwargs: Any) -> None:
    from config.runtime import freeze_startup_objects

    freeze_startup_objects()


@task_prerun.connect
@task_postrun.connect
def _keep_healthy_database_connections(**kwargs: Any) -> None:
    """What Django does around each request, around each task: connections are reused
    (CELERY_DB_REUSE_MAX keeps Celery's fixup from closing them), a broken one or one older
    than CONN_MAX_AGE is closed, and the next query checks the rest (CONN_HEALTH_CHECKS), so a
    database restart costs one reconnect, not a failed task."""
    close_old_connections()


def _retry_later(task: Any, exc: BaseException) -> NoReturn:
    """Retry ``task`` after an infrastructure error instead of letting it fail.

    A failed task would be acknowledged and its message dropped (acks_late acknowledges
    failures). The retry is a new message with a countdown; the worker holds it until then
    without blocking a process, and acknowledges the current one only once the retry is
    published. The backoff stays far below the Redis visibility timeout, past which Redis
    would hand the waiting message to another worker as well. Rejecting with requeue
    instead would hand the message straight back: a busy loop for as long as the outage
    lasts, or a blocked process if it slept first.
    """
    from django.conf import settings

    request = task.request
    if request.called_directly or request.is_eager:
        raise exc  # run inline: the caller sees the error
    backoff = min(settings.TASK_RETRY_BACKOFF_MAX_SECONDS, 2.0 ** min(request.retries, 30))
    countdown = round(random.uniform(backoff / 2, backoff), 1)
    logger.warning(
        "task %s[%s] hit %s; retry %d in %.1fs",
        task.name,
        request.id,
        type(exc).__name__,
        request.retries + 1,
        countdown,
    )
    try:
        raise task.retry(exc=exc, countdown=countdown)
    except Reject as not_published:
        # The retry could not be published: the broker is out too. Requeue this message
        # rather than let Celery reject it for good; if the broker cannot take that either,
        # the message stays unacknowledged and Redis redelivers it after the visibility timeout.
        raise Reject(not_published.reason, requeue=True) from exc


def project_task(name: str, *, queue: str | None = None, **options: Any) -> Callable:
    """Register a task under a stable ``name``.

    Tasks take IDs, never model objects; nobody reads task results, so none are stored.
    Delivery is at-least-once (late ack, requeue when the worker process dies, retry after a
    database or broker error): task bodies must be safe to run twice, which the delivery
    claim guarantees.
    """

    def decorate(func: Callable) -> Any:
        from django.conf import settings

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except INFRASTRUCTURE_ERRORS as exc:
                _retry_later(task, exc)

        defaults = {
            "queue": queue or settings.CORE_QUEUE,
            "ignore_result": True,
            "acks_late": True,
            "reject_on_worker_lost": True,
            "max_retries": None,  # retries after infrastructure errors go on until it is back
        }
        task = app.task(name=name, **(defaults | options))(run)
        return task

    return decorate

"""The embedded profile's worker and beat, running as threads inside the web process.

Same tasks, same queues, same code paths as the services profile; only the transport is the
in-memory one, so ``make run`` needs no Redis and no separate worker processes. Messages in
memory die with the process, but every delivery row survives on disk and the sweep
republishes whatever was unfinished when the process comes back.
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from celery.worker import WorkController
from django.conf import settings

from config.celery import app as celery_app
from config.queues import all_queues

logger = logging.getLogger(__name__)


class _Worker(WorkController):
    def __init__(self, *args, **kwargs):
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer):
        self.ready.set()


class EmbeddedWorker:
    def __init__(self, *, concurrency: int = 4) -> None:
        celery_app.finalize()
        celery_app.set_current()
        celery_app.set_default()
        self.worker = _Worker(
            app=celery_app,
            hostname="embedded@localhost",
            pool="threads",
            concurrency=concurrency,
            queues=all_queues(),
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.beat = EmbeddedService(
            celery_app, thread=True, schedule_filename=settings.CELERY_BEAT_SCHEDULE_FILENAME, max_interval=1
        )
        self._thread = threading.Thread(target=self.worker.start, name="embedded-celery-worker", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self.worker.ready.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        self.beat.start()
        logger.info("embedded worker consuming %d queues; beat running", len(all_queues()))

    def stop(self) -> None:
        self.beat.stop()
        self.worker.stop(in_sighandler=False)

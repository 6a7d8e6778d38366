"""Start a Celery worker for one channel (its four priority queues, critical first) or core."""

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.queues import channel_queues


class Command(BaseCommand):
    help = "Run a Celery worker: `worker email|sms|push|inapp|core|maintenance [celery worker options...]`."

    def add_arguments(self, parser):
        parser.add_argument("pool", help=f"one of {', '.join(settings.CHANNELS)}, core or maintenance")
        parser.add_argument("celery_args", nargs="*", help="extra `celery worker` options, after --")

    def handle(self, *args, pool, celery_args, **options):
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            # The in-memory broker lives inside one process: a worker started here would wait
            # on an empty queue of its own while `serve` publishes to another.
            raise CommandError(
                "this is the embedded profile, whose broker is in memory inside `manage.py serve`: a separate "
                "worker would never receive anything. Use `make run` (it runs the worker in-process), or set "
                "the services environment (DATABASE_URL, SHARD_DATABASE_URLS, REDIS_URL, SECRET_KEY) to run "
                "workers as separate processes."
            )
        if pool == "core":
            queues = [settings.CORE_QUEUE]
        elif pool == "maintenance":
            queues = [settings.MAINTENANCE_QUEUE]
        elif pool in settings.CHANNELS:
            queues = channel_queues(pool)
        else:
            raise CommandError(f"unknown worker pool {pool!r}; use one of {', '.join(settings.CHANNELS)}, core or maintenance")
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--queues", ",".join(queues), "--hostname", f"{pool}@%h", "--loglevel", "INFO",
            # Mingle (revoked-task sync at start-up, ~2 s of waiting for replies) and gossip
            # (worker-to-worker events) serve features this project does not use.
            "--without-mingle", "--without-gossip",
            *celery_args,
        ]  # fmt: skip
        # The celery command replaces this process, so its exit status is the process's:
        # non-zero after an unrecoverable error, which a supervisor (honcho, systemd
        # Restart=on-failure) acts on. app.worker_main() dropped that status: a worker that
        # died on an error exited 0 and nothing restarted it.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)

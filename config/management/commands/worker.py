"""Start a Celery worker for one channel (its four priority queues, critical first) or core."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.celery import app as celery_app
from config.queues import channel_queues


class Command(BaseCommand):
    help = "Run a Celery worker: `worker email|sms|push|inapp|core [celery worker options...]`."

    def add_arguments(self, parser):
        parser.add_argument("pool", help=f"one of {', '.join(settings.CHANNELS)} or core")
        parser.add_argument("celery_args", nargs="*", help="extra `celery worker` options, after --")

    def handle(self, *args, pool, celery_args, **options):
        if pool == "core":
            queues = [settings.CORE_QUEUE]
        elif pool in settings.CHANNELS:
            queues = channel_queues(pool)
        else:
            raise CommandError(f"unknown worker pool {pool!r}; use one of {', '.join(settings.CHANNELS)} or core")
        argv = ["worker", "--queues", ",".join(queues), "--hostname", f"{pool}@%h", "--loglevel", "INFO", *celery_args]
        celery_app.worker_main(argv)

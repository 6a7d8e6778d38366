"""Django's (Daphne's) development server, with a warning in the embedded profile: it serves
HTTP without the in-process worker, so accepted notifications are never delivered.

`config` is listed before `daphne` in INSTALLED_APPS so that this command is the one found.
"""

from daphne.management.commands.runserver import Command as DaphneRunserver
from django.conf import settings

NO_WORKER_WARNING = (
    "WARNING: runserver serves HTTP without the embedded worker: notifications are accepted but "
    "nothing will be delivered. Use `make run` (or `python manage.py serve`) instead."
)


class Command(DaphneRunserver):
    def inner_run(self, *args, **options):
        # inner_run (not handle): printed once per server start, also under the autoreloader.
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            self.stderr.write(self.style.WARNING(NO_WORKER_WARNING))
        return super().inner_run(*args, **options)

"""Run the web process (Daphne). In the embedded profile, also prepare the databases, seed the
demo data and run the Celery worker and beat inside the same process."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the API, admin and docs (embedded profile: with an in-process worker and demo data)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-worker", action="store_true", help="Embedded profile: do not run the worker")
        parser.add_argument("--no-setup", action="store_true", help="Embedded profile: skip migrate and demo data")

    def handle(self, *args, host, port, no_worker, no_setup, **options):
        embedded = settings.EMBEDDED
        if embedded and not no_setup:
            self.stderr.write("Preparing the embedded databases...")
            call_command("migrate", verbosity=0, interactive=False)
            call_command("seed_demo", verbosity=0)
        if embedded and not no_worker:
            from config.embedded import EmbeddedWorker

            EmbeddedWorker().start()

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from config.asgi import application

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            ready_callable=lambda: self._banner(host, port, embedded),
            verbosity=0,
        )
        server.run()

    def _banner(self, host: str, port: int, embedded: bool) -> None:
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{shown_host}:{port}"
        lines = [
            "",
            f"Notification service ({settings.PROFILE} profile) is running.",
            f"  API            {base}/api/v1/",
            f"  API docs       {base}/api/docs/",
            f"  Admin          {base}/admin/",
            f"  Health         {base}/healthz   {base}/readyz   Metrics {base}/metrics",
        ]
        if embedded:
            lines += [
                f"  Admin login    {settings.DEMO_ADMIN_USERNAME} / {settings.DEMO_ADMIN_PASSWORD}",
                f"  Demo API key   {settings.DEMO_API_KEY}",
                f"  Data           {settings.VAR_DIR}",
                "",
                "Try it:",
                f"  curl -s -X POST {base}/api/v1/notifications \\",
                f"    -H 'Authorization: Bearer {settings.DEMO_API_KEY}' -H 'Content-Type: application/json' \\",
                """    -d '{"user_id": "alice", "type": "order_shipped", "data": {"name": "Alice", "order_id": "A-1"}, """
                """"idempotency_key": "demo-1"}'""",
            ]
        lines.append("")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

"""Run the web process (Daphne, with request bodies judged from their headers: see
config.asgi_server). In the embedded profile, also prepare the databases, seed the demo data
on the first start, and run the Celery worker and beat inside the same process."""

from __future__ import annotations

import errno
import socket
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve the API, admin and docs. Embedded profile: migrate, seed the demo data on the first "
        "start (an empty database), and run the worker in-process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-worker", action="store_true", help="Embedded profile: do not run the worker")
        parser.add_argument("--no-setup", action="store_true", help="Embedded profile: skip migrate and demo data")

    def handle(self, *args, host: str, port: int, no_worker: bool, no_setup: bool, **options):
        # Before anything is migrated, seeded or started: a second `make run` must not touch
        # the data of the first one and then fail to listen.
        ensure_port_free(host, port)
        embedded = settings.EMBEDDED
        if embedded and not no_setup:
            self._prepare_embedded_data()
        if embedded and not no_worker:
            from config.embedded import EmbeddedWorker

            EmbeddedWorker().start()

        from daphne.endpoints import build_endpoint_description_strings
        from twisted.internet import reactor

        from config.asgi import application
        from config.asgi_server import BoundedServer
        from config.log import daphne_access_log

        # Computed here: the database must not be queried from inside the server's event loop.
        text = banner(host, port, embedded)
        server = BoundedServer(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            action_logger=daphne_access_log,
            # Runs after the listening socket is bound (or failed to be); the banner waits until
            # the reactor is running, i.e. the server answers.
            ready_callable=lambda: reactor.callWhenRunning(self._announce, server, text),
            verbosity=0,
        )
        server.run()
        if not server.listening_addresses:
            raise CommandError(f"could not listen on {host}:{port}; {port_hint(port)}")

    def _prepare_embedded_data(self) -> None:
        from notifications.services.demo import database_is_empty

        self.stderr.write("Preparing the embedded databases...")
        call_command("migrate", verbosity=0, interactive=False)
        if database_is_empty():
            # Only on the first start (or after `make reset`): seeding again would be harmless
            # (it only creates what is missing) but would bring back deleted demo data.
            self.stderr.write("First start: creating the demo data...")
            call_command("seed_demo", verbosity=0)

    def _announce(self, server, text: str) -> None:
        from twisted.internet import reactor

        if not server.listening_addresses:
            reactor.stop()  # the listen failure was logged; handle() turns it into an exit code
            return
        sys.stdout.write(text)
        sys.stdout.flush()


def port_hint(port: int) -> str:
    return f"stop what is using port {port}, or set PORT=<another port> (e.g. PORT={port + 1} make run)"


def ensure_port_free(host: str, port: int) -> None:
    """Bind (as the server will, with SO_REUSEADDR) and release at once; CommandError if taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(
            f"cannot listen on {host!r}: {exc.strerror}; set HOST=<an address of this machine>"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(f"port {port} is in use on {host}; {port_hint(port)}") from None
            if exc.errno == errno.EACCES:
                raise CommandError(f"no permission to listen on port {port}; {port_hint(port)}") from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def banner(host: str, port: int, embedded: bool) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    lines = [
        "",
        f"Notification service ({settings.PROFILE} profile) is running on {base}/",
        f"  API            {base}/api/v1/",
        f"  API docs       {base}/api/docs/",
        f"  Admin          {base}/admin/",
        f"  Health         {base}/healthz   {base}/readyz   Metrics {base}/metrics",
    ]
    if embedded:
        lines += _demo_lines(base)
    lines.append("")
    return "\n".join(lines) + "\n"


_DEMO_SEND = (
    '{"user_id": "alice", "type": "order_shipped", "data": {"name": "Alice", "order_id": "A-1"}, '
    '"idempotency_key": "demo-1"}'
)


def _demo_user_token(user_id: str) -> str:
    """A token for the demo user's bell page, valid as long as tokens may be (a day)."""
    from notifications.services import user_tokens

    return user_tokens.issue(user_id, ttl_seconds=settings.USER_TOKEN_MAX_TTL_SECONDS).token


def _demo_lines(base: str) -> list[str]:
    from notifications.services.demo import demo_access

    access = demo_access()
    lines = []
    if access.admin_username:
        lines.append(f"  Admin login    {access.admin_username} / {access.admin_password}")
    else:
        lines.append("  Admin login    create one: python manage.py createsuperuser")
    if access.api_key:
        lines.append(f"  Demo API key   {access.api_key}")
    else:
        lines.append("  API key        create one: python manage.py create_api_client NAME (prints the key once)")
    lines.append(f"  Data           {settings.VAR_DIR}   (start over: make reset)")
    lines.append(f"  Bell (alice)   {base}/inbox/?token={_demo_user_token('alice')}")
    if access.api_key:
        lines += [
            "",
            "Try it:",
            f"  curl -sS -w '\\nHTTP status %{{http_code}}\\n' -X POST {base}/api/v1/notifications \\",
            f"    -H 'Authorization: Bearer {access.api_key}' -H 'Content-Type: application/json' \\",
            "    -d '" + _DEMO_SEND + "'",
        ]
    return lines

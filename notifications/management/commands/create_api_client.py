from django.core.management.base import BaseCommand, CommandError

from notifications.errors import InvalidRequest
from notifications.models import ALL_SCOPES, DEFAULT_SCOPES
from notifications.services.api_keys import create_api_client


class Command(BaseCommand):
    help = "Create an API client and print its key once (only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--types", default="*", help="Comma-separated type keys this client may send, or * (default)")
        parser.add_argument("--critical", action="store_true", help="May send at critical priority")
        parser.add_argument(
            "--scopes",
            default=",".join(DEFAULT_SCOPES),
            help=f"Comma-separated, from {', '.join(ALL_SCOPES)} (default: all but tokens)",
        )

    def handle(self, *args, name, types, critical, scopes, **options):
        try:
            issued = create_api_client(
                name,
                allowed_types=[t.strip() for t in types.split(",")],
                may_send_critical=critical,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        except InvalidRequest as error:
            raise CommandError("; ".join(f"--{_OPTION.get(p.field, p.field)}: {p.message}" for p in error.problems)) from None
        self.stderr.write(f"Created API client {name!r}. Store this key now; it is not shown again:")
        self.stdout.write(issued.key)


_OPTION = {"allowed_types": "types", "scopes": "scopes", "name": "name"}

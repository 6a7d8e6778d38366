from django.core.management.base import BaseCommand, CommandError

from notifications.models import ALL_SCOPES, NotificationType
from notifications.services.api_keys import create_api_client


class Command(BaseCommand):
    help = "Create an API client and print its key once (only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--types", default="*", help="Comma-separated type keys this client may send, or * (default)")
        parser.add_argument("--critical", action="store_true", help="May send at critical priority")
        parser.add_argument("--scopes", default=",".join(ALL_SCOPES), help=f"Comma-separated, from {', '.join(ALL_SCOPES)}")

    def handle(self, *args, name, types, critical, scopes, **options):
        allowed = [t.strip() for t in types.split(",") if t.strip()]
        if not allowed:
            raise CommandError("--types needs at least one type key, or *")
        if "*" not in allowed:
            known = set(NotificationType.objects.filter(key__in=allowed).values_list("key", flat=True))
            unknown = sorted(set(allowed) - known)
            if unknown:
                raise CommandError(f"unknown notification type(s): {', '.join(unknown)}")
        else:
            allowed = ["*"]
        try:
            issued = create_api_client(
                name,
                allowed_types=allowed,
                may_send_critical=critical,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:
            if "unique" in str(exc).lower():
                raise CommandError(f"an API client named {name!r} already exists") from exc
            raise
        self.stderr.write(f"Created API client {name!r}. Store this key now; it is not shown again:")
        self.stdout.write(issued.key)

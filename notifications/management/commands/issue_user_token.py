from django.core.management.base import BaseCommand, CommandError

from notifications import rules
from notifications.services import user_tokens


class Command(BaseCommand):
    help = "Print a short-lived end-user token (for the bell and the inbox API) for USER_ID."

    def add_arguments(self, parser):
        parser.add_argument("user_id")
        parser.add_argument(
            "--ttl", type=int, default=None, help="Lifetime in seconds (default USER_TOKEN_TTL_SECONDS)"
        )

    def handle(self, *args, user_id: str, ttl: int | None, **options):
        try:
            issued = user_tokens.issue(user_id, ttl_seconds=ttl)
        except rules.RuleViolation as violation:
            raise CommandError(f"user_id: {violation.message}") from None
        except ValueError as exc:
            raise CommandError(f"--ttl: {exc}") from None
        self.stdout.write(issued.token)

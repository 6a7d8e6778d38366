from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from notifications.services.demo import DemoCredentialsRefused, seed_catalog, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo data that is missing; never changes what exists. Always: the demo notification "
        "types with their templates (safe in any profile). In the embedded profile, or with "
        "--demo-credentials: also the demo recipients alice and bob, the admin login "
        f"{settings.DEMO_ADMIN_USERNAME!r} and the published demo API key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--catalog-only",
            action="store_true",
            help="Only the notification types and their templates, in every profile.",
        )
        parser.add_argument(
            "--demo-credentials",
            action="store_true",
            help=(
                "Also the demo recipients, admin login and API key (the default in the embedded profile). "
                "Refused in the services profile: these credentials are published."
            ),
        )

    def handle(self, *args, catalog_only: bool, demo_credentials: bool, verbosity: int, **options):
        if catalog_only and demo_credentials:
            raise CommandError("--catalog-only and --demo-credentials exclude each other")
        if catalog_only or not (demo_credentials or settings.EMBEDDED):
            created = seed_catalog()
            if verbosity:
                self.stdout.write(
                    f"demo catalog ready ({len(created)} type(s) created, existing ones left as they are)"
                )
            return
        try:
            seed_demo()
        except DemoCredentialsRefused as exc:
            raise CommandError(str(exc)) from exc
        if verbosity:
            self.stdout.write(
                "demo data ready: types, templates, recipients alice and bob, "
                f"admin login {settings.DEMO_ADMIN_USERNAME!r} and the demo API key (existing ones left as they are)"
            )

from django.core.management.base import BaseCommand

from notifications.services.demo import seed_catalog, seed_demo


class Command(BaseCommand):
    help = "Create the demo notification types and templates (and with --users, demo users and keys)."

    def add_arguments(self, parser):
        parser.add_argument("--catalog-only", action="store_true", help="Only the types and templates")

    def handle(self, *args, catalog_only, **options):
        if catalog_only:
            seed_catalog()
            self.stdout.write("demo catalog ready")
            return
        access = seed_demo()
        self.stdout.write(f"demo data ready; API key {access.api_key}")

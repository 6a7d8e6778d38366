"""Remove push devices that are gone: not seen for a long time, or failing every send."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from delivery.services.devices import prune_devices


class Command(BaseCommand):
    help = (
        "Delete push devices not seen (registered or refreshed) for --days, or whose last --failures sends all failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.DEVICE_PRUNE_UNSEEN_DAYS, help="default %(default)s")
        parser.add_argument(
            "--failures", type=int, default=settings.DEVICE_PRUNE_MAX_FAILURES, help="default %(default)s"
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, days: int, failures: int, dry_run: bool, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        if failures < 1:
            raise CommandError("--failures must be at least 1")
        counts = prune_devices(unseen_days=days, max_failures=failures, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb} {counts['unseen'] + counts['failing']} device(s): {counts['unseen']} not seen for {days} days, "
            f"{counts['failing']} with {failures}+ failed sends in a row"
        )

"""Operators' dead letters: `manage.py dlq list|show|replay|purge`. The work is in
delivery.services.dlq; this parses options and prints.

Exit status: 0 done (also when nothing matched), 1 `show` of an id that is not a dead letter,
2 a bad option or value (the message names it).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from delivery.models import Delivery
from delivery.services import dlq

USAGE = 2
NOT_FOUND = 1


def _summary(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "notification_id": str(delivery.notification_id),
        "user_id": delivery.user_id,
        "channel": delivery.channel,
        "priority": delivery.priority,
        "status": delivery.status,
        "reason": delivery.reason,
        "provider": delivery.provider,
        "attempts": delivery.attempts,
        "updated_at": delivery.updated_at.isoformat(),
    }


def _detail(delivery: Delivery) -> dict[str, Any]:
    return {
        **_summary(delivery),
        "address": dlq.masked_address(delivery.address),  # recognisable, not readable
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
        "fallback_of": str(delivery.fallback_of) if delivery.fallback_of else None,
        "possibly_duplicated": delivery.possibly_duplicated,
        "purged_at": delivery.purged_at.isoformat() if delivery.purged_at else None,
        "payload_fields": sorted(delivery.payload or {}),
    }


class Command(BaseCommand):
    help = (
        "Dead letters (failed and dead-lettered deliveries) across every shard: "
        "`dlq list [filters] [--json]`, `dlq show ID [--json]`, "
        "`dlq replay (IDS... | filters | --all) [--dry-run]`, `dlq purge (IDS... | filters | --all) [--dry-run]`. "
        "Exit status 0 done, 1 not found (show), 2 bad option."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="list|show|replay|purge")
        listing = actions.add_parser("list", help="the newest dead letters matching the filters")
        self._filters(listing)
        listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        listing.add_argument("--json", action="store_true", help="one JSON document instead of a table")
        show = actions.add_parser("show", help="one dead letter in full")
        show.add_argument("id")
        show.add_argument("--json", action="store_true")
        for name, text in (("replay", "send again (published at once)"), ("purge", "drop for good (kept as history)")):
            sub = actions.add_parser(name, help=text)
            sub.add_argument("ids", nargs="*", metavar="ID", help="delivery ids (else every match of the filters)")
            self._filters(sub)
            sub.add_argument("--all", action="store_true", help="every dead letter, when no id or filter is given")
            sub.add_argument("--dry-run", action="store_true", help="only say how many would be affected")

    @staticmethod
    def _filters(parser: CommandParser) -> None:
        parser.add_argument("--channel", help=f"one of {', '.join(settings.CHANNELS)}")
        parser.add_argument("--provider", help="e.g. sendgrid, twilio, fcm, console")
        parser.add_argument("--reason", help="e.g. retries_exhausted, unexpected_error, invalid_address")
        parser.add_argument("--status", help="failed or dead_lettered (default: both)")
        parser.add_argument("--older-than", help="ended longer ago than this: 30m, 2h, 7d")
        parser.add_argument("--newer-than", help="ended within this: 30m, 2h, 7d")
        parser.add_argument("--user", help="one user's dead letters")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(options)
        except dlq.InvalidFilter as invalid:
            option = "ID" if invalid.field == "ids" else f"--{invalid.field}"
            raise CommandError(f"{option}: {invalid.message}", returncode=USAGE) from None

    def _where(self, options: dict[str, Any]) -> dlq.DeadLetterFilter:
        return dlq.make_filter(
            channel=options["channel"],
            provider=options["provider"],
            reason=options["reason"],
            status=options["status"],
            older_than=options["older_than"],
            newer_than=options["newer_than"],
            user_id=options["user"],
        )

    def _list(self, options: dict[str, Any]) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit: must be at least 1", returncode=USAGE)
        where = self._where(options)
        rows = dlq.list_dead_letters(where, limit=options["limit"])
        total = dlq.count_dead_letters(where)
        if options["json"]:
            self.stdout.write(json.dumps({"count": total, "dead_letters": [_summary(d) for d in rows]}, indent=2))
            return
        for d in rows:
            self.stdout.write(
                f"{d.id}  {d.channel:<5} {d.status:<13} {d.reason or '-':<20} {d.provider or '-':<10} "
                f"attempts={d.attempts} {d.updated_at:%Y-%m-%d %H:%M:%S} user={d.user_id}"
            )
        self.stdout.write(f"{len(rows)} shown of {total} dead letter(s)")

    def _show(self, options: dict[str, Any]) -> None:
        delivery = dlq.get_dead_letter(options["id"])
        if delivery is None:
            raise CommandError(
                f"{options['id']}: no failed or dead-lettered delivery has this id", returncode=NOT_FOUND
            )
        detail = _detail(delivery)
        if options["json"]:
            self.stdout.write(json.dumps(detail, indent=2))
            return
        for key, value in detail.items():
            self.stdout.write(f"{key:<20} {value if value not in (None, '') else '-'}")

    def _selection(self, options: dict[str, Any]) -> dlq.Selection:
        where = self._where(options)
        if not options["ids"] and where.is_empty and not options["all"]:
            raise CommandError("name delivery ids, give a filter, or say --all", returncode=USAGE)
        return dlq.select(ids=options["ids"], where=where)

    def _replay(self, options: dict[str, Any]) -> None:
        selection = self._selection(options)
        if options["dry_run"]:
            self.stdout.write(f"would replay {selection.count} dead letter(s) (dry run)")
            return
        self.stdout.write(f"replayed {dlq.replay(selection)} of {selection.count} dead letter(s); published now")

    def _purge(self, options: dict[str, Any]) -> None:
        selection = self._selection(options)
        if options["dry_run"]:
            self.stdout.write(f"would purge {selection.count} dead letter(s) (dry run)")
            return
        self.stdout.write(f"purged {dlq.purge(selection)} dead letter(s)")

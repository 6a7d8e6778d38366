"""``migrate`` that migrates the global database and every shard.

With ``--database ALIAS`` it migrates that one database only (as Django's own command does;
the test runner relies on this). The router decides which tables each database gets.
"""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import DEFAULT_DB_ALIAS

from config.sharding import shard_aliases


class Command(DjangoMigrateCommand):
    help = "Migrate the global database and every shard (or only --database)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def _aliases(self, options) -> list[str]:
        if options["database"] is not None:
            return [options["database"]]
        return [DEFAULT_DB_ALIAS, *shard_aliases()]

    def get_check_kwargs(self, options):
        kwargs = super().get_check_kwargs({**options, "database": DEFAULT_DB_ALIAS})
        kwargs["databases"] = self._aliases(options)
        return kwargs

    def handle(self, *args, **options):
        if options["database"] is not None:
            return super().handle(*args, **options)
        for alias in self._aliases(options):
            if options["verbosity"] >= 1:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Database {alias}:"))
            super().handle(*args, **{**options, "database": alias})

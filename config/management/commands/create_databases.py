"""Create the global database and every shard database if they do not exist (PostgreSQL)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the global and shard PostgreSQL databases named in DATABASE_URL and SHARD_DATABASE_URLS, if missing."

    def handle(self, *args, **options):
        import psycopg
        from psycopg import sql

        created = []
        for alias, conf in settings.DATABASES.items():
            if conf["ENGINE"] != "django.db.backends.postgresql":
                raise CommandError(f"{alias} is not a PostgreSQL database; nothing to create")
            server = {
                "host": conf.get("HOST") or None,
                "port": conf.get("PORT") or None,
                "user": conf.get("USER") or None,
                "password": conf.get("PASSWORD") or None,
            }
            try:
                with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **server) as connection:
                    exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [conf["NAME"]]).fetchone()
                    if not exists:
                        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(conf["NAME"])))
                        created.append(conf["NAME"])
            except psycopg.OperationalError as exc:
                raise CommandError(f"cannot reach the PostgreSQL server of {alias}: {exc}".strip()) from None
        if created:
            self.stdout.write(f"created {', '.join(created)}")
        elif options["verbosity"] > 1:
            self.stdout.write("every database exists")

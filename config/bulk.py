"""Insert many plain rows at once: COPY on PostgreSQL, executemany on other backends.

The send path writes several rows per notification; building model instances and letting
the ORM compile an INSERT costs far more per row than the database does. Rows here are
tuples of Python values in ``columns`` order (dicts for JSON columns).
"""

from __future__ import annotations

from typing import Any, Sequence

from django.db import connections, models


def bulk_insert(alias: str, model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    connection = connections[alias]
    meta = model._meta
    fields = [meta.get_field(name) for name in columns]
    db_columns = [field.column for field in fields]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    column_sql = ", ".join(quote(c) for c in db_columns)
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
        # The raw psycopg cursor bypasses Django's error translation; restore it so callers
        # catch django.db.IntegrityError as with any other query.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                if json_positions:
                    for row in rows:
                        row = list(row)
                        for i in json_positions:
                            row[i] = Jsonb(row[i])
                        copy.write_row(row)
                else:
                    for row in rows:
                        copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(fields))
    prepared = [[field.get_db_prep_save(value, connection) for field, value in zip(fields, row)] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})", prepared)

"""Insert many plain rows at once, in as few round trips as the backend allows.

The send path writes several rows per notification into several tables; building model
instances and letting the ORM compile INSERTs costs far more per row than the database does.
Rows here are tuples of Python values in ``columns`` order (dicts for JSON columns).

On PostgreSQL, small batches (a single send) go out as INSERTs in one pipeline — one round
trip for every table — and large batches (bulk sends) use COPY, the fastest way in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from django.db import connections, models

# Below this many rows in all, pipelined INSERTs beat COPY (which costs two round trips
# per table before the first row is in).
COPY_THRESHOLD = 64


class JsonText(str):
    """A JSON column value already serialized (the send path has the text at hand)."""


def json_text(value: Any, *, sort_keys: bool = False) -> JsonText:
    return JsonText(json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys))


@dataclass(frozen=True)
class Rows:
    model: type[models.Model]
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _layout(connection, batch: Rows):
    meta = batch.model._meta
    fields = [meta.get_field(name) for name in batch.columns]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    column_sql = ", ".join(quote(field.column) for field in fields)
    return fields, table, column_sql


def _json_ready(fields, rows):
    """Wrap JSON values for psycopg's INSERT parameters (JsonText is cast with ::jsonb)."""
    from psycopg.types.json import Jsonb

    positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    if not positions or all(isinstance(rows[0][i], JsonText) for i in positions):
        return rows
    ready = []
    for row in rows:
        row = list(row)
        for i in positions:
            if not isinstance(row[i], JsonText):
                row[i] = Jsonb(row[i])
        ready.append(row)
    return ready


def _pg_type(field, connection) -> str:
    """The PostgreSQL type name of a column, as psycopg's registry knows it."""
    return field.db_type(connection).split("(")[0].strip()


def _as_is(text: str) -> str:
    return text


def _binary_ready(fields, rows):
    """JSON values wrapped for psycopg; pre-serialized ones pass through untouched."""
    from psycopg.types.json import Jsonb

    positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    if not positions:
        return rows
    ready = []
    for row in rows:
        row = list(row)
        for i in positions:
            value = row[i]
            row[i] = Jsonb(value, dumps=_as_is) if isinstance(value, JsonText) else Jsonb(value)
        ready.append(row)
    return ready


def _placeholders(fields) -> str:
    return ", ".join("%s::jsonb" if isinstance(field, models.JSONField) else "%s" for field in fields)


def insert_rows(alias: str, batches: Sequence[Rows]) -> None:
    """Insert every batch on ``alias`` (call inside the caller's transaction)."""
    batches = [batch for batch in batches if batch.rows]
    if not batches:
        return
    connection = connections[alias]
    if connection.vendor != "postgresql":
        for batch in batches:
            _insert_generic(connection, batch)
        return
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    total = sum(len(batch.rows) for batch in batches)
    # The raw psycopg objects bypass Django's error translation; restore it so callers
    # catch django.db.IntegrityError as with any other query.
    with connection.wrap_database_errors:
        if total <= COPY_THRESHOLD:
            with raw.pipeline(), psycopg.Cursor(raw) as cursor:
                for batch in batches:
                    fields, table, column_sql = _layout(connection, batch)
                    cursor.executemany(
                        f"INSERT INTO {table} ({column_sql}) VALUES ({_placeholders(fields)})",
                        _json_ready(fields, batch.rows),
                    )
            return
        with raw.cursor() as cursor:
            for batch in batches:
                fields, table, column_sql = _layout(connection, batch)
                # Binary COPY: a third of the client CPU of text COPY (no value formatting).
                with cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([_pg_type(field, connection) for field in fields])
                    for row in _binary_ready(fields, batch.rows):
                        copy.write_row(row)


def _insert_generic(connection, batch: Rows) -> None:
    fields, table, column_sql = _layout(connection, batch)
    placeholders = ", ".join(["%s"] * len(fields))
    prepared = [
        [
            field.get_db_prep_save(json.loads(value) if isinstance(value, JsonText) else value, connection)
            for field, value in zip(fields, row)
        ]
        for row in batch.rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})", prepared)


def bulk_insert(alias: str, model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    insert_rows(alias, [Rows(model, columns, rows)])

"""Insert many plain rows at once, in as few round trips as the backend allows.

The send path writes several rows per notification into several tables; building model
instances and letting the ORM compile INSERTs costs far more per row than the database does.
A :class:`RowSpec` declares a table's columns once, from the model; rows are built by field
name (``spec.row(id=..., user_id=...)``), so a column added to the model cannot be silently
left out or shifted: a missing or unknown name is an error where the row is built.

On PostgreSQL, small batches (a single send) go out as INSERTs in one pipeline — one round
trip for every table — and large batches (bulk sends) use COPY, the fastest way in.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connections, models
from psycopg.types.json import Jsonb

# Below this many rows in all, pipelined INSERTs beat COPY (which costs two round trips
# per table before the first row is in).
COPY_THRESHOLD = 64


def _as_is(text: str) -> str:
    return text


class JsonText(Jsonb):
    """A JSON column value serialized once, when the row is built.

    It is a psycopg ``Jsonb`` whose "dumps" returns the text unchanged, so COPY and INSERT
    both send it as jsonb without serializing or wrapping again per row.
    """

    __slots__ = ()

    def __init__(self, text: str):
        super().__init__(text, dumps=_as_is)

    @property
    def text(self) -> str:
        return self.obj


def dump_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON. orjson (an order of magnitude faster than json on the send path),
    with the standard library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys).encode()


def json_text(value: Any, *, sort_keys: bool = False) -> JsonText:
    return JsonText(dump_json(value, sort_keys=sort_keys).decode())


class RowSpec:
    """Every concrete column of ``model``, and a row type built by keyword.

    ``defaults`` gives values for columns most rows leave at their initial state (a delivery's
    lease, say); every other column must be named when a row is built. Rows are named tuples
    (as cheap as plain tuples to build and to COPY), in ``columns`` order.
    """

    def __init__(self, model: type[models.Model], *, defaults: Mapping[str, Any] | None = None):
        defaults = dict(defaults or {})
        names = [field.attname for field in model._meta.concrete_fields]
        unknown = sorted(set(defaults) - set(names))
        if unknown:
            raise ValueError(f"{model.__name__} has no column(s) {', '.join(unknown)}")
        # Named tuples take defaults for their last fields only: required columns first.
        ordered = [name for name in names if name not in defaults] + [name for name in names if name in defaults]
        self.model = model
        self.columns: tuple[str, ...] = tuple(ordered)
        self.row = namedtuple(f"{model.__name__}Row", ordered, defaults=[defaults[n] for n in ordered if n in defaults])

    def rows(self, rows: Sequence[tuple]) -> Rows:
        return Rows(self.model, self.columns, rows)


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
    """Rows whose JSON values are all JsonText go as they are; others get wrapped."""
    positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    if not positions or all(isinstance(row[i], Jsonb) for row in rows for i in positions):
        return rows
    ready = []
    for row in rows:
        row = list(row)
        for i in positions:
            if not isinstance(row[i], Jsonb):
                row[i] = Jsonb(row[i])
        ready.append(row)
    return ready


def _pg_type(field, connection) -> str:
    """The PostgreSQL type name of a column, as psycopg's registry knows it."""
    return field.db_type(connection).split("(")[0].strip()


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
                    placeholders = ", ".join(["%s"] * len(fields))
                    cursor.executemany(
                        f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})", _json_ready(fields, batch.rows)
                    )
            return
        with raw.cursor() as cursor:
            for batch in batches:
                fields, table, column_sql = _layout(connection, batch)
                # Binary COPY: a third of the client CPU of text COPY (no value formatting).
                with cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([_pg_type(field, connection) for field in fields])
                    for row in _json_ready(fields, batch.rows):
                        copy.write_row(row)


def _insert_generic(connection, batch: Rows) -> None:
    fields, table, column_sql = _layout(connection, batch)
    placeholders = ", ".join(["%s"] * len(fields))
    prepared = [
        [
            field.get_db_prep_save(json.loads(value.text) if isinstance(value, JsonText) else value, connection)
            for field, value in zip(fields, row, strict=True)
        ]
        for row in batch.rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})", prepared)

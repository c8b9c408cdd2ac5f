"""Writing many rows, each with values of its own, in one statement per chunk.

Django's `bulk_update` builds a `CASE WHEN pk = ... THEN ...` expression per field and row, which
costs more in Python than the UPDATE costs PostgreSQL (half of a nurture tick's time at 1,000 rows).
On PostgreSQL `bulk_update_rows` sends `UPDATE ... FROM (VALUES ...)` instead; elsewhere it falls
back to `bulk_update`.

`insert_rows` writes a few rows from plain values, without a model instance per row: on the intake's
path (a lead's timeline and follow-ups), building instances and the statement cost more than the
INSERT itself.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model

CHUNK_ROWS = 1000  # rows per statement: keeps one statement's parameters and text moderate


def bulk_update_rows(objects: Sequence[Model], fields: Sequence[str]) -> int:
    """Write `fields` (attribute names) of each object to its row; returns how many rows were updated."""
    if not objects:
        return 0
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return model._default_manager.bulk_update(objects, fields)
    meta = model._meta
    columns: list[Field[Any, Any]] = [meta.pk, *(meta.get_field(name) for name in fields)]  # type: ignore[list-item]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    # Every placeholder is cast: VALUES has no column types of its own, and a NULL or a JSON
    # document in its first row would otherwise be read as text.
    row_sql = "(" + ", ".join(f"%s::{_cast_type(column, connection)}" for column in columns) + ")"
    names = ", ".join(quote(column.column) for column in columns)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    pk_column = quote(columns[0].column)
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objects), CHUNK_ROWS):
            chunk = objects[start : start + CHUNK_ROWS]
            params = [
                column.get_db_prep_save(getattr(obj, column.attname), connection) for obj in chunk for column in columns
            ]
            # Only names and placeholders are spliced in; every value is a parameter.
            sql = (
                f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row_sql] * len(chunk))}) "  # noqa: S608
                f"AS v({names}) WHERE {table}.{pk_column} = v.{pk_column}"
            )
            cursor.execute(sql, params)
            updated += cursor.rowcount
    return updated


Statement = tuple[str, list[Any]]  # SQL with %s placeholders, and its parameters


def model_field(model: type[Model], name: str) -> Field[Any, Any]:
    """The model's concrete field (or foreign key) of this name or attribute name (`lead_id`)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is no column")
    return field


def insert_statement(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> Statement:
    """One INSERT of `rows` (values in the order of `fields`, attribute names: `lead_id` for a foreign
    key; at most CHUNK_ROWS of them); every other column gets what Django would write (its default,
    else "" or NULL). For a caller that sends it with other statements (`insert_rows(before=...)`).

    On PostgreSQL the rows travel as one JSON document (`jsonb_to_recordset`): psycopg then quotes one
    parameter instead of one per value, which cost more than the INSERT on the intake's path."""
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    columns = [model_field(model, name) for name in fields]
    defaults: list[Field[Any, Any]] = [
        field for field in meta.concrete_fields if field not in columns and field is not meta.auto_field
    ]
    default_values = [field.get_default() for field in defaults]
    all_columns = [*columns, *defaults]
    quote = connection.ops.quote_name
    names = ", ".join(quote(column.column) for column in all_columns)
    if connection.vendor == "postgresql":
        typed = ", ".join(f"{quote(column.column)} {_cast_type(column, connection)}" for column in all_columns)
        document = [
            {
                column.column: column.get_prep_value(value)
                for column, value in zip(all_columns, [*row, *default_values], strict=True)
            }
            for row in rows
        ]
        # Only names and types are spliced in; the rows are one parameter.
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT {names} "  # noqa: S608
            f"FROM jsonb_to_recordset(%s::jsonb) AS row_values({typed})"
        )
        return sql, [json.dumps(document, default=_json_value)]
    params = [
        column.get_db_prep_save(value, connection)
        for row in rows
        for column, value in zip(all_columns, [*row, *default_values], strict=True)
    ]
    row_sql = "(" + ", ".join(["%s"] * len(all_columns)) + ")"
    # Only names and placeholders are spliced in; every value is a parameter.
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES {', '.join([row_sql] * len(rows))}"  # noqa: S608
    return sql, params


def _json_value(value: Any) -> str:
    """A value JSON has no type for, as PostgreSQL reads it into its column."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()  # full precision, unlike DjangoJSONEncoder's milliseconds
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def insert_rows(
    model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], *, before: Sequence[Statement] = ()
) -> list[int]:
    """Insert one row per item of `rows` (as `insert_statement`), one statement per CHUNK_ROWS rows,
    without a model instance per row; returns the new rows' primary keys, in order. No signals are
    sent, as with `bulk_create`. `before`: statements (other inserts of the same transaction) to run
    first, in the same round trip where the driver can (`sends_several_statements`)."""
    connection = connections[router.db_for_write(model)]
    if not connection.features.can_return_rows_from_bulk_insert:
        _execute_each(connection, before)
        objects = [model(**dict(zip(fields, row, strict=True))) for row in rows]
        return [obj.pk for obj in model._default_manager.bulk_create(objects)]
    returning = f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    returned: list[Any] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK_ROWS):
            sql, params = insert_statement(model, fields, rows[start : start + CHUNK_ROWS])
            returned += _rows_after(cursor, [*before, (sql + returning, params)])
            before = ()
        _execute_each(connection, before)  # no rows to insert: the statements before still run
    return [row[0] for row in returned]


def sends_several_statements(cursor: Any) -> bool:
    """Whether one execute on this (Django) cursor may hold several statements, sent in one round trip:
    psycopg binding parameters on the client (Django's default) sends them as one simple query."""
    try:
        import psycopg
    except ImportError:  # psycopg2, SQLite or another driver: one statement per execute
        return False
    return isinstance(cursor.cursor, psycopg.ClientCursor)


def first_rows(statements: Sequence[Statement], *, using: str = "default") -> list[Any]:
    """Run the statements in order, in one round trip where the driver can; each one's first row
    (None when it returns none, or returns no rows at all, like an INSERT without RETURNING)."""
    rows: list[Any] = []
    with connections[using].cursor() as cursor:
        if len(statements) > 1 and sends_several_statements(cursor):
            cursor.execute(
                "; ".join(sql for sql, _ in statements), [param for _, params in statements for param in params]
            )
            for index in range(len(statements)):
                if index:
                    cursor.nextset()
                rows.append(cursor.fetchone() if cursor.description else None)
            return rows
        for sql, params in statements:
            cursor.execute(sql, params)
            rows.append(cursor.fetchone() if cursor.description else None)
    return rows


def _rows_after(cursor: Any, statements: Sequence[Statement]) -> list[Any]:
    """Run the statements in order; the rows the last one returns."""
    if len(statements) > 1 and sends_several_statements(cursor):
        cursor.execute(*_joined(statements))
        for _ in statements[1:]:
            cursor.nextset()
        return list(cursor.fetchall())
    for sql, params in statements:
        cursor.execute(sql, params)
    return list(cursor.fetchall())


def _joined(statements: Sequence[Statement]) -> Statement:
    return "; ".join(sql for sql, _ in statements), [param for _, params in statements for param in params]


def _execute_each(connection: Any, statements: Sequence[Statement]) -> None:
    if statements:
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)


def _cast_type(column: Field[Any, Any], connection: Any) -> str:
    """The column's type for a cast, without a length: casting to varchar(n) cuts a longer value
    short without a word, where assigning it to the column refuses it."""
    cast: str = column.cast_db_type(connection)  # type: ignore[attr-defined]
    return re.sub(r"^(varchar|character varying)\(\d+\)$", "varchar", cast)

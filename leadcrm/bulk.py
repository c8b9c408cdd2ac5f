"""Writing many rows, each with values of its own, in one statement per chunk.

Django's `bulk_update` builds a `CASE WHEN pk = ... THEN ...` expression per field and row, which
costs more in Python than the UPDATE costs PostgreSQL (half of a nurture tick's time at 1,000 rows).
On PostgreSQL `bulk_update_rows` sends `UPDATE ... FROM (VALUES ...)` instead; elsewhere it falls
back to `bulk_update`.

`bulk_insert_rows` and `bulk_update_json` go further for batches of thousands: the rows travel as
one JSON document (`jsonb_to_recordset`), one parameter instead of one per value, so neither Django
nor the driver prepares each value on its own. Elsewhere they fall back to `bulk_create` and
`bulk_update`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db import connections, router
from django.db.models import Field, JSONField, Model

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


def _cast_type(column: Field[Any, Any], connection: Any) -> str:
    """The column's type for a cast, without a length: casting to varchar(n) cuts a longer value
    short without a word, where assigning it to the column refuses it."""
    cast: str = column.cast_db_type(connection)  # type: ignore[attr-defined]
    return re.sub(r"^(varchar|character varying)\(\d+\)$", "varchar", cast)


def bulk_insert_rows(model: type[Model], rows: Sequence[dict[str, Any]], *, returning: Sequence[str]) -> list[tuple]:
    """Insert rows (attribute name -> value; the model's defaults fill the rest) and return the
    `returning` attributes of each new row, in no promised order."""
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    if connection.vendor != "postgresql" or not all(_json_safe(field) for field in fields):
        created = model._default_manager.bulk_create([model(**row) for row in rows])
        return [tuple(getattr(obj, name) for name in returning) for obj in created]
    missing = [field for field in fields if field.attname not in rows[0]]
    # Fixed defaults once; callable ones (a UUID, the time) for every row, as model instances would.
    per_row = [field for field in missing if field.has_default() and callable(field.default)]
    fixed = {field.column: field.get_default() for field in missing if field not in per_row}
    defaults = [(field.column, field) for field in per_row]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    record = ", ".join(f"{quote(field.column)} {_json_type(field, connection)}" for field in fields)
    by_attname = {field.attname: field for field in meta.concrete_fields}
    returned = ", ".join(quote(by_attname[name].column) for name in returning)
    table = quote(meta.db_table)
    # Only names are spliced in; the rows are one parameter.
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({record}) "  # noqa: S608
        f"RETURNING {returned}"
    )
    result: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), JSON_CHUNK_ROWS):
            document = [
                {
                    **fixed,
                    **{column: field.get_default() for column, field in defaults},
                    **{by_attname[name].column: value for name, value in row.items()},
                }
                for row in rows[start : start + JSON_CHUNK_ROWS]
            ]
            cursor.execute(sql, [json.dumps(document, default=_json_default_memo())])
            result += cursor.fetchall()
    return result


def bulk_update_json(objects: Sequence[Model], fields: Sequence[str]) -> int:
    """`bulk_update_rows` with the rows as one JSON parameter; returns how many rows were updated."""
    if not objects:
        return 0
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    columns: list[Field[Any, Any]] = [meta.pk, *(meta.get_field(name) for name in fields)]  # type: ignore[list-item]
    if connection.vendor != "postgresql" or not all(_json_safe(column) for column in columns):
        return bulk_update_rows(objects, fields)
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    record = ", ".join(f"{quote(column.column)} {_json_type(column, connection)}" for column in columns)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    pk_column = quote(columns[0].column)
    sql = (
        f"UPDATE {table} SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS v({record}) "  # noqa: S608
        f"WHERE {table}.{pk_column} = v.{pk_column}"
    )
    attnames = [(column.column, column.attname) for column in columns]
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objects), JSON_CHUNK_ROWS):
            document = [
                {name: getattr(obj, attname) for name, attname in attnames}
                for obj in objects[start : start + JSON_CHUNK_ROWS]
            ]
            cursor.execute(sql, [json.dumps(document, default=_json_default_memo())])
            updated += cursor.rowcount
    return updated


JSON_CHUNK_ROWS = 5000

# Field types whose values JSON carries unchanged (a JSONField's document as itself), or as the text
# PostgreSQL reads them from (dates and times in ISO 8601, UUIDs, decimals).
_JSON_SAFE_TYPES = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "DateField",
    "DateTimeField",
    "DecimalField",
    "EmailField",
    "FloatField",
    "ForeignKey",
    "IntegerField",
    "OneToOneField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SlugField",
    "SmallIntegerField",
    "TextField",
    "TimeField",
    "URLField",
    "UUIDField",
}


def _json_safe(field: Field[Any, Any]) -> bool:
    if isinstance(field, JSONField):
        return field.encoder is None
    return field.get_internal_type() in _JSON_SAFE_TYPES


def _json_type(field: Field[Any, Any], connection: Any) -> str:
    return "jsonb" if isinstance(field, JSONField) else _cast_type(field, connection)


def _json_default_memo() -> Any:
    """_json_default that writes each object once: a batch's rows share a few moments."""
    written: dict[int, tuple[Any, str]] = {}

    def default(value: Any) -> str:
        known = written.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        text = _json_default(value)
        written[id(value)] = (value, text)
        return text

    return default


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")

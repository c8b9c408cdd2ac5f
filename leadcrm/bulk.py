"""Writing many rows, each with values of its own, in one statement per chunk.

Django's `bulk_update` builds a `CASE WHEN pk = ... THEN ...` expression per field and row, which
costs more in Python than the UPDATE costs PostgreSQL (half of a nurture tick's time at 1,000 rows).
On PostgreSQL `bulk_update_rows` sends `UPDATE ... FROM (VALUES ...)` instead; elsewhere it falls
back to `bulk_update`.
"""

from __future__ import annotations

import re
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
    return len(_update_from_values(connection, objects, fields, {}))


def bulk_update_rows_if(objects: Sequence[Model], fields: Sequence[str], only_if: dict[str, Any]) -> set[Any]:
    """`bulk_update_rows` for the rows that still have the values of `only_if` (attribute: value);
    returns the primary keys of those updated. On PostgreSQL a conditional UPDATE: a row another
    transaction holds is waited for and checked again; elsewhere the rows are locked and read first."""
    if not objects:
        return set()
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        matching = set(
            model._default_manager.select_for_update()
            .filter(pk__in=[obj.pk for obj in objects], **only_if)
            .values_list("pk", flat=True)
        )
        model._default_manager.bulk_update([obj for obj in objects if obj.pk in matching], fields)
        return matching
    return _update_from_values(connection, objects, fields, only_if)


def _update_from_values(
    connection: Any, objects: Sequence[Model], fields: Sequence[str], only_if: dict[str, Any]
) -> set[Any]:
    meta = type(objects[0])._meta
    columns: list[Field[Any, Any]] = [meta.pk, *(meta.get_field(name) for name in fields)]  # type: ignore[list-item]
    conditions: list[tuple[Field[Any, Any], Any]] = [(meta.get_field(name), value) for name, value in only_if.items()]  # type: ignore[misc]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    # Every placeholder is cast: VALUES has no column types of its own, and a NULL or a JSON
    # document in its first row would otherwise be read as text.
    row_sql = "(" + ", ".join(f"%s::{_cast_type(column, connection)}" for column in columns) + ")"
    names = ", ".join(quote(column.column) for column in columns)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    pk_column = quote(columns[0].column)
    where = "".join(f" AND {table}.{quote(field.column)} = %s" for field, _ in conditions)
    condition_params = [field.get_db_prep_save(value, connection) for field, value in conditions]
    updated: set[Any] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(objects), CHUNK_ROWS):
            chunk = objects[start : start + CHUNK_ROWS]
            params = [
                column.get_db_prep_save(getattr(obj, column.attname), connection) for obj in chunk for column in columns
            ]
            # Only names and placeholders are spliced in; every value is a parameter.
            sql = (
                f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row_sql] * len(chunk))}) "  # noqa: S608
                f"AS v({names}) WHERE {table}.{pk_column} = v.{pk_column}{where} RETURNING {table}.{pk_column}"
            )
            cursor.execute(sql, params + condition_params)
            updated.update(row[0] for row in cursor.fetchall())
    return updated


def _cast_type(column: Field[Any, Any], connection: Any) -> str:
    """The column's type for a cast, without a length: casting to varchar(n) cuts a longer value
    short without a word, where assigning it to the column refuses it."""
    cast: str = column.cast_db_type(connection)  # type: ignore[attr-defined]
    return re.sub(r"^(varchar|character varying)\(\d+\)$", "varchar", cast)

"""Writing many rows, each with values of its own, in one statement per chunk.

Django's `bulk_update` builds a `CASE WHEN pk = ... THEN ...` expression per field and row, which
costs more in Python than the UPDATE costs PostgreSQL (half of a nurture tick's time at 1,000 rows);
its `bulk_create` adapts every value of every row as a parameter of its own, escaping a JSON
document's quotes one by one. On PostgreSQL these functions send the rows as ONE JSON document that
the database unpacks (`jsonb_to_recordset`): one C-encoded parameter, whatever the rows. Elsewhere
they fall back to Django's `bulk_update` and `bulk_create`. `insert_values` takes plain values
instead of model instances, for inserts of thousands of rows.

`insert_rows` writes a few rows from plain values on the intake's path (a lead's timeline and
follow-ups), where building instances and the statement cost more than the INSERT itself; with
`before=` and `first_rows` a transaction's statements share one round trip where the driver can, and
their INSERTs run as statements prepared once per database session (`_execute_together`).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import json
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import NOT_PROVIDED, Field, JSONField, Model
from django.db.models.signals import post_save, pre_save

M = TypeVar("M", bound=Model)

CHUNK_ROWS = 1000  # rows per statement: keeps one statement's document moderate
_deferred = threading.local()  # .statements: what execute_soon keeps for the caller's next round trip


def bulk_update_rows(objects: Sequence[Model], fields: Sequence[str]) -> int:
    """Write `fields` (attribute names) of each object to its row; returns how many rows were updated."""
    if not objects:
        return 0
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return model._default_manager.bulk_update(objects, fields)
    return len(_update_from_rows(connection, objects, fields, {}))


def bulk_update_rows_if(
    objects: Sequence[Model], fields: Sequence[str], only_if: dict[str, Any], *, before: Sequence[Statement] = ()
) -> set[Any]:
    """`bulk_update_rows` for the rows that still have the values of `only_if` (attribute: value);
    returns the primary keys of those updated. On PostgreSQL a conditional UPDATE: a row another
    transaction holds is waited for and checked again; elsewhere the rows are locked and read first.
    `before`: statements (other writes of the same transaction) to run first, in the same round trip
    where the driver can."""
    if not objects:
        _execute_each(connections["default"], before)
        return set()
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        _execute_each(connection, before)
        matching = set(
            model._default_manager.select_for_update()
            .filter(pk__in=[obj.pk for obj in objects], **only_if)
            .values_list("pk", flat=True)
        )
        model._default_manager.bulk_update([obj for obj in objects if obj.pk in matching], fields)
        return matching
    return _update_from_rows(connection, objects, fields, only_if, before)


def bulk_insert_rows(objects: Sequence[M], *, skip_conflicts_on: str = "") -> list[M]:
    """Insert the objects (as `bulk_create` does: defaults already on them, `auto_now` fields set now)
    and give each its primary key; returns them. `skip_conflicts_on` (PostgreSQL only): a unique
    field; an object whose value of it a row has already (or an object before it) is left out, with no
    primary key, and only the objects inserted are returned."""
    if not objects:
        return list(objects)
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    # A column whose default the database sets is left to bulk_create, which knows to leave it out.
    if connection.vendor != "postgresql" or any(field.db_default is not NOT_PROVIDED for field in meta.concrete_fields):
        if skip_conflicts_on:  # bulk_create would raise on the first conflict, or not say which rows went in
            raise NotImplementedError(f"skip_conflicts_on needs PostgreSQL and {model.__name__} without db_default")
        return model._default_manager.bulk_create(objects)
    pk = meta.pk
    unique = model_field(model, skip_conflicts_on) if skip_conflicts_on else None
    columns = [
        field for field in meta.concrete_fields if field is not pk or getattr(objects[0], field.attname) is not None
    ]
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.column) for field in columns)
    returning = f"RETURNING {quote(pk.column)}"
    if unique is not None:
        returning = (
            f"ON CONFLICT ({quote(unique.column)}) DO NOTHING RETURNING {quote(pk.column)}, {quote(unique.column)}"
        )
    inserted: list[M] = []
    with connection.cursor() as cursor:
        for start in range(0, len(objects), CHUNK_ROWS):
            chunk = objects[start : start + CHUNK_ROWS]
            for field in columns:
                if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                    for obj in chunk:
                        field.pre_save(obj, add=True)
            # Only names and types are spliced in; the rows are one parameter. They are read, inserted
            # and returned in the document's order (as Django's bulk_create relies on for UNNEST).
            sql = (
                f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT {names} "  # noqa: S608
                f"FROM jsonb_to_recordset(%s::jsonb) AS r({_record_columns(columns, connection)}) {returning}"
            )
            cursor.execute(sql, [_document(chunk, columns)])
            if unique is None:
                new = list(zip(chunk, cursor.fetchall(), strict=True))
            else:
                # Rows left out return nothing: the others are told apart by their unique value.
                new_pks = {value: pk_value for pk_value, value in cursor.fetchall()}
                new = [
                    (obj, (new_pks.pop(value),)) for obj in chunk if (value := getattr(obj, unique.attname)) in new_pks
                ]
            for obj, (key,) in new:
                setattr(obj, pk.attname, key)
                obj._state.adding, obj._state.db = False, connection.alias
                inserted.append(obj)
    return inserted


def insert_values(model: type[Model], rows: Sequence[dict[str, Any]], *, returning: Sequence[str]) -> list[tuple]:
    """Insert rows given as plain values (attribute name -> value; the model's defaults fill the rest),
    without a model instance per row as `bulk_insert_rows` needs (the nurture tick writes thousands),
    and return the `returning` attributes of each new row, in no promised order."""
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
    record = ", ".join(f"{quote(field.column)} {_cast_type(field, connection)}" for field in fields)
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
            cursor.execute(sql, [json.dumps(document, default=_json_value_memo())])
            result += cursor.fetchall()
    return result


def instance_builder(model: type[M]) -> Callable[..., M]:
    """A function making an instance of `model` from keyword values (attribute names: `lead_id`, not
    `lead`), every other field at its default as keyword arguments would give it (a callable one
    called for each instance), passed on as positional values: a third of the cost of keyword
    arguments, for a batch that builds hundreds."""
    fields = model._meta.concrete_fields
    index = {field.attname: position for position, field in enumerate(fields)}
    called = [field.has_default() and callable(field.default) for field in fields]
    per_instance = [(position, field) for position, field in enumerate(fields) if called[position]]
    fixed = [None if called[position] else field.get_default() for position, field in enumerate(fields)]

    def build(**values: Any) -> M:
        row = fixed.copy()
        for position, field in per_instance:
            if field.attname not in values:
                row[position] = field.get_default()
        for name, value in values.items():
            row[index[name]] = value
        return model(*row)

    return build


Statement = tuple[str, list[Any]]  # SQL with %s placeholders, and its parameters

_PLANNED_ONCE = "/* planned once */ "


def planned_once(statement: Statement) -> Statement:
    """A lookup whose best plan is the same whatever its values, to run like the INSERTs in
    `_execute_together`: prepared once per database session, so PostgreSQL does not plan it for every
    call (a lookup on a table of dozens of indexes weighs each: 0.2-0.4 ms). Only for a lookup one
    index serves whatever the values: its conditions on the index's leading columns, its ORDER BY the
    index's order, so no plan made without the values (or without statistics) can do better."""
    sql, params = statement
    return _PLANNED_ONCE + sql, params


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
    all_columns, defaults, fixed = _insert_shape(model, tuple(fields))

    def defaults_of_a_row() -> list[Any]:
        # A callable default (a UUID, a moment) is called for every row, as a model instance would.
        return [fixed[field] if field in fixed else field.get_default() for field in defaults]

    quote = connection.ops.quote_name
    names = _column_names(tuple(all_columns), connection.alias)
    if connection.vendor == "postgresql":
        prepared = _prepared_columns(tuple(all_columns))
        document = [
            {
                name: value if type(value) in unchanged else prepare(value)
                for (name, unchanged, prepare), value in zip(prepared, [*row, *defaults_of_a_row()], strict=True)
            }
            for row in rows
        ]
        # Only names and types are spliced in; the rows are one parameter.
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT {names} "  # noqa: S608
            f"FROM jsonb_to_recordset(%s::jsonb) AS row_values({_record_columns(all_columns, connection)})"
        )
        return sql, [json.dumps(document, default=_json_value)]
    params = [
        column.get_db_prep_save(value, connection)
        for row in rows
        for column, value in zip(all_columns, [*row, *defaults_of_a_row()], strict=True)
    ]
    row_sql = "(" + ", ".join(["%s"] * len(all_columns)) + ")"
    # Only names and placeholders are spliced in; every value is a parameter.
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES {', '.join([row_sql] * len(rows))}"  # noqa: S608
    return sql, params


@functools.lru_cache(maxsize=128)
def _insert_shape(
    model: type[Model], fields: tuple[str, ...]
) -> tuple[list[Field[Any, Any]], list[Field[Any, Any]], dict[Field[Any, Any], Any]]:
    """The columns an insert of `fields` writes (theirs, then the defaults' of the rest), the fields
    left to their defaults, and the defaults that are fixed values: the same for every insert."""
    meta = model._meta
    columns = [model_field(model, name) for name in fields]
    defaults: list[Field[Any, Any]] = [
        field for field in meta.concrete_fields if field not in columns and field is not meta.auto_field
    ]
    fixed = {field: field.get_default() for field in defaults if not callable(field.default)}
    return [*columns, *defaults], defaults, fixed


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


def rows_source(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> Statement:
    """Rows of plain values (in the order of `fields`, attribute names) as what follows
    `INSERT INTO table (columns)`: on PostgreSQL a SELECT from one JSON document (one parameter,
    whatever the rows), elsewhere VALUES with a parameter per value."""
    connection = connections[router.db_for_write(model)]
    columns = [model_field(model, name) for name in fields]
    if connection.vendor == "postgresql":
        names = ", ".join(connection.ops.quote_name(column.column) for column in columns)
        prepared = _prepared_columns(tuple(columns))
        document = [
            {
                name: value if type(value) in unchanged else prepare(value)
                for (name, unchanged, prepare), value in zip(prepared, row, strict=True)
            }
            for row in rows
        ]
        # Only names and types are spliced in; the rows are one parameter.
        record = _record_columns(columns, connection)
        sql = f"SELECT {names} FROM jsonb_to_recordset(%s::jsonb) AS row_values({record})"  # noqa: S608
        return sql, [json.dumps(document, default=_json_value)]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params = [
        column.get_db_prep_save(value, connection) for row in rows for column, value in zip(columns, row, strict=True)
    ]
    return "VALUES " + ", ".join([row_sql] * len(rows)), params


@contextmanager
def deferred_statements(*, using: str = "default") -> Iterator[list[Statement]]:
    """Within the block, `execute_soon` keeps its statements, in order, in the list it yields, for the
    caller to send with its next round trip (`before=` of `insert_rows`), emptying the list; those it
    did not send run when the block ends. Only for writes nothing reads before then (a rollup's
    increment)."""
    kept: list[Statement] = []
    outer = getattr(_deferred, "statements", None)
    _deferred.statements = kept
    try:
        yield kept
    finally:
        _deferred.statements = outer
    _execute_each(connections[using], kept)


def take_deferred() -> list[Statement]:
    """The statements `execute_soon` has kept so far in this `deferred_statements` block, for the
    caller to send with its next round trip (`before=`); they are no longer kept. None outside one."""
    kept = getattr(_deferred, "statements", None)
    if not kept:
        return []
    taken = list(kept)
    kept.clear()
    return taken


def last_rows(statements: Sequence[Statement], *, using: str = "default") -> list[Any]:
    """Run the statements in order, in one round trip where the driver can; the rows the last returns."""
    with connections[using].cursor() as cursor:
        return _rows_after(cursor, statements)


def next_id_statement(model: type[Model]) -> Statement | None:
    """A statement whose first row holds an id for a new row of `model`, taken from its sequence (to
    send with other statements: `first_rows`); None where ids are known only once a row is inserted."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return None
    return "SELECT nextval(pg_get_serial_sequence(%s, %s))", [model._meta.db_table, model._meta.pk.column]


def insert_soon(obj: Model) -> None:
    """`obj.save()` for a new object whose id is already set (`next_id_statement`), its INSERT sent
    with the caller's next round trip (`deferred_statements`): the same values (auto_now fields set
    now), the same pre_save and post_save signals, sent now. A receiver finds the row in the database
    only after that round trip; what it writes with `execute_soon` follows the INSERT."""
    model = type(obj)
    meta = model._meta
    using = router.db_for_write(model, instance=obj)
    pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    fields = list(meta.concrete_fields)
    values = [field.pre_save(obj, add=True) for field in fields]
    execute_soon(*insert_statement(model, [field.attname for field in fields], [values]), using=using)
    obj._state.adding, obj._state.db = False, using
    post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)


def execute_soon(sql: str, params: Sequence[Any], *, using: str = "default") -> None:
    """Run the statement now, or, inside `deferred_statements`, with the caller's next round trip."""
    kept = getattr(_deferred, "statements", None)
    if kept is not None:
        kept.append((sql, list(params)))
        return
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)


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
            _execute_together(cursor, statements)
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
        _execute_together(cursor, statements)
        for _ in statements[1:]:
            cursor.nextset()
        return list(cursor.fetchall())
    for sql, params in statements:
        cursor.execute(sql, params)
    return list(cursor.fetchall())


class _PreparedInserts:
    """The INSERTs prepared on one database session (PostgreSQL keeps them until it ends)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        # A round trip with a PREPARE failed: which of its statements ran is unknown, so the next
        # round trip deallocates them all and prepares again (PREPARE is not undone by a rollback).
        self.unsure = False


_prepared_inserts: weakref.WeakKeyDictionary[Any, _PreparedInserts] = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%[s%]")


def _execute_together(cursor: Any, statements: Sequence[Statement]) -> None:
    """Send the statements in one execute (one round trip, `sends_several_statements`), the cursor
    left at the first one's result.

    Each INSERT runs as a statement prepared on the session, its PREPARE sent with its first use:
    PostgreSQL parsed and planned the intake's inserts (jsonb_to_recordset of dozens of typed columns)
    on every call, about half of their time in the database. An INSERT's plan is the same whatever its
    rows, so a prepared one loses nothing; so are lookups marked `planned_once`. Other statements are
    planned for their values as before. Not behind a pooler that hands each transaction another session (its setting,
    DISABLE_SERVER_SIDE_CURSORS).
    """
    prepared = None
    if not cursor.db.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        prepared = _prepared_inserts.get(cursor.db.connection)
        if prepared is None:
            prepared = _prepared_inserts[cursor.db.connection] = _PreparedInserts()
    setup: list[str] = []  # sent first, so the cursor skips their results to reach the statements'
    if prepared is not None and prepared.unsure:
        setup.append("DEALLOCATE ALL")
        prepared.names.clear()
        prepared.unsure = False
    preparing: set[str] = set()
    parts: list[str] = []
    params: list[Any] = []
    for sql, values in statements:
        if prepared is not None and sql.startswith(("INSERT ", _PLANNED_ONCE)):
            name, preparation, execution = _prepared_form(sql, len(values))
            if name not in prepared.names and name not in preparing:
                setup.append(preparation)
                preparing.add(name)
            sql = execution
        parts.append(sql)
        params += values
    try:
        cursor.execute("; ".join([*setup, *parts]), params)
    except Exception:
        if preparing and prepared is not None:
            prepared.unsure = True
        raise
    if prepared is not None:
        prepared.names |= preparing
    for _ in setup:
        cursor.nextset()


@functools.lru_cache(maxsize=256)
def _prepared_form(sql: str, parameters: int) -> tuple[str, str, str]:
    """(name, PREPARE, EXECUTE) of an INSERT: the same for every call of the statement."""
    name = "leadcrm_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    numbers = iter(range(1, parameters + 1))
    # PREPARE's $1, $2 ... for the statement's %s; %% stays (the execute reads it as %).
    body = _PLACEHOLDER.sub(lambda match: match[0] if match[0] == "%%" else f"${next(numbers)}", sql)
    # Logs and pg_stat_activity still say what runs: the statement's head, up to its columns.
    head = re.sub(r'[^\w". ]', "", sql.partition("(")[0]).strip()
    arguments = f"({', '.join(['%s'] * parameters)})" if parameters else ""
    return name, f"PREPARE {name} AS {body}", f"/* {head} */ EXECUTE {name}{arguments}"


def _execute_each(connection: Any, statements: Sequence[Statement]) -> None:
    if statements:
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)


def _update_from_rows(
    connection: Any,
    objects: Sequence[Model],
    fields: Sequence[str],
    only_if: dict[str, Any],
    before: Sequence[Statement] = (),
) -> set[Any]:
    meta = type(objects[0])._meta
    # get_field() may return a reverse relation to the stubs; `fields` name concrete columns only.
    columns: list[Field[Any, Any]] = [meta.pk, *(meta.get_field(name) for name in fields)]  # type: ignore[list-item]
    conditions: list[tuple[Field[Any, Any], Any]] = [
        (meta.get_field(name), value)  # type: ignore[misc]  # as above: concrete fields by name
        for name, value in only_if.items()
    ]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    pk_column = quote(columns[0].column)
    # `= NULL` matches nothing; IS NULL is what the ORM (and the fallback elsewhere) means by None.
    where = "".join(
        f" AND {table}.{quote(field.column)} {'IS NULL' if value is None else '= %s'}" for field, value in conditions
    )
    condition_params = [field.get_db_prep_save(value, connection) for field, value in conditions if value is not None]
    updated: set[Any] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(objects), CHUNK_ROWS):
            chunk = objects[start : start + CHUNK_ROWS]
            # Only names and types are spliced in; the rows are one parameter.
            sql = (
                f"UPDATE {table} SET {assignments} FROM jsonb_to_recordset(%s::jsonb) "  # noqa: S608
                f"AS v({_record_columns(columns, connection)}) "
                f"WHERE {table}.{pk_column} = v.{pk_column}{where} RETURNING {table}.{pk_column}"
            )
            updated.update(
                row[0] for row in _rows_after(cursor, [*before, (sql, [_document(chunk, columns), *condition_params])])
            )
            before = ()
    return updated


@functools.lru_cache(maxsize=256)
def _column_names(columns: tuple[Field[Any, Any], ...], alias: str) -> str:
    """The columns' quoted names, comma-separated: the same for every statement of these columns."""
    return ", ".join(connections[alias].ops.quote_name(column.column) for column in columns)


def _record_columns(columns: Sequence[Field[Any, Any]], connection: Any) -> str:
    """The `name type` list of a jsonb_to_recordset row; worked out once per set of columns (the
    types cost more than the rest of an intake's statement)."""
    return _record_columns_of(tuple(columns), connection.alias)


@functools.lru_cache(maxsize=256)
def _record_columns_of(columns: tuple[Field[Any, Any], ...], alias: str) -> str:
    connection = connections[alias]
    return ", ".join(
        f"{connection.ops.quote_name(column.column)} {_cast_type(column, connection)}" for column in columns
    )


def _document(objects: Sequence[Model], columns: Sequence[Field[Any, Any]]) -> str:
    """The rows as a JSON array of objects keyed by column; a JSON field's value is nested as is."""
    prepared = [(column.column, column.attname, *_prepare_of(column)) for column in columns]
    rows = []
    for obj in objects:
        row = {}
        for name, attname, unchanged, prepare in prepared:
            value = getattr(obj, attname)
            # A value already of the column's own type is what get_prep_value would return: skipping
            # its calls halves the cost of a batch's document.
            row[name] = value if type(value) in unchanged else prepare(value)
        rows.append(row)
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


_NONE = type(None)
# Python types each column type's get_prep_value returns unchanged (exact types: a str enum member,
# a bool for an integer, go through get_prep_value as before).
_UNCHANGED_TYPES: dict[str, frozenset[type]] = {
    **dict.fromkeys(
        (
            "AutoField",
            "BigAutoField",
            "BigIntegerField",
            "IntegerField",
            "PositiveBigIntegerField",
            "PositiveIntegerField",
            "PositiveSmallIntegerField",
            "SmallAutoField",
            "SmallIntegerField",
        ),
        frozenset({int, _NONE}),
    ),
    **dict.fromkeys(("CharField", "EmailField", "SlugField", "TextField", "URLField"), frozenset({str, _NONE})),
    "BooleanField": frozenset({bool, _NONE}),
    "UUIDField": frozenset({uuid.UUID, _NONE}),
}


@functools.lru_cache(maxsize=256)
def _prepared_columns(columns: tuple[Field[Any, Any], ...]) -> list[tuple[str, frozenset[type], Any]]:
    """(column name, `_prepare_of`) of each column: the same for every statement of these columns."""
    return [(column.column, *_prepare_of(column)) for column in columns]


def _prepare_of(column: Field[Any, Any]) -> tuple[frozenset[type], Any]:
    """(types whose values go into the document as they are, the preparation of any other value)."""
    if column.get_internal_type() == "JSONField":
        return frozenset(), _same
    # A relation's column is a ForeignKey, whose target_field the base Field type does not declare.
    target = column.target_field if column.is_relation else column  # type: ignore[attr-defined]
    # Django's own field classes only: a subclass may prepare even a str or an int its own way.
    plain = type(target).__module__.startswith("django.db.models.fields")
    if plain and type(target).__name__ == "DateTimeField":
        return frozenset({_NONE}), functools.partial(_aware_or_prepared, column.get_prep_value)
    return (_UNCHANGED_TYPES.get(type(target).__name__, frozenset()) if plain else frozenset()), column.get_prep_value


def _aware_or_prepared(prepare: Any, value: Any) -> Any:
    """An aware datetime as it is (what DateTimeField.get_prep_value returns for one); anything else
    (a naive one, which it warns about and makes aware; a date; a string) through it."""
    if type(value) is datetime.datetime and value.utcoffset() is not None:
        return value
    return prepare(value)


def _same(value: Any) -> Any:
    return value


def _json_value(value: Any) -> Any:
    """What JSON cannot say itself, in the text PostgreSQL reads into the column's type (a time to the
    microsecond, unlike DjangoJSONEncoder's milliseconds)."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds()} seconds"
    raise TypeError(f"{type(value).__name__} is not a column value")


def _cast_type(column: Field[Any, Any], connection: Any) -> str:
    """The column's type for a cast, without a length: casting to varchar(n) cuts a longer value
    short without a word, where assigning it to the column refuses it."""
    # Field.cast_db_type() is Django's (since 2.0) but missing from django-stubs.
    cast: str = column.cast_db_type(connection)  # type: ignore[attr-defined]
    return re.sub(r"^(varchar|character varying)\(\d+\)$", "varchar", cast)


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


def _json_value_memo() -> Any:
    """_json_value that writes each object once: a batch's rows share a few moments."""
    written: dict[int, tuple[Any, str]] = {}

    def default(value: Any) -> str:
        known = written.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        text = _json_value(value)
        written[id(value)] = (value, text)
        return text

    return default

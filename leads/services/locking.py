"""Transaction-scoped locks on names, for work that must not run twice at once."""

import hashlib
from collections.abc import Iterable
from typing import Any

from django.db import connection


def _key(parts: Iterable[Any]) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_statement(*names: tuple[Any, ...]) -> tuple[str, list[int]]:
    """The statement that takes each named lock until the transaction ends, and its parameters;
    ("", []) where there is nothing to take (no names, or not PostgreSQL).

    PostgreSQL: advisory locks, taken in a fixed order so two transactions never wait on each
    other. SQLite: every write transaction is already exclusive (transaction_mode IMMEDIATE).
    """
    if connection.vendor != "postgresql":
        return "", []
    keys = sorted({_key(name) for name in names})
    if not keys:
        return "", []
    # PostgreSQL takes the locks left to right, in the sorted order.
    return "SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys)), keys


def lock_until_commit(*names: tuple[Any, ...]) -> None:
    """Hold each named lock until the current transaction ends (one statement, one round trip)."""
    sql, keys = lock_statement(*names)
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql, keys)

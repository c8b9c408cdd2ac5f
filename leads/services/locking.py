"""Transaction-scoped locks on names, for work that must not run twice at once."""

import hashlib
from collections.abc import Iterable
from typing import Any

from django.db import connection


def _key(parts: Iterable[Any]) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_until_commit(*names: tuple[Any, ...]) -> None:
    """Hold each named lock until the current transaction ends.

    PostgreSQL: advisory locks, taken in a fixed order so two transactions never wait on each
    other. SQLite: every write transaction is already exclusive (transaction_mode IMMEDIATE).
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted({_key(name) for name in names})
    if not keys:
        return
    # One statement, one round trip: PostgreSQL takes the locks left to right, in the sorted order.
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys)), keys)

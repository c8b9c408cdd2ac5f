"""The demo business (`seed_demo`) loaded once for several tests instead of once for each.

For ordinary (non-transactional) tests: `seeded_demo()` seeds inside a transaction that stays open
while the tests that share it run, each in its own savepoint inside it (pytest-django's `db`), and is
rolled back at the end. The seed runs inside a transaction in either case, so what the tests see is
what a seed inside each test gave them; after-commit callbacks did not run then and do not run now.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

from django.core.management import call_command
from django.db import transaction


@contextmanager
def seeded_demo(django_db_blocker) -> Iterator[str]:
    """The demo, seeded and rolled back around the tests of a module or class; yields what it printed."""
    with django_db_blocker.unblock(), transaction.atomic():
        output = StringIO()
        call_command("seed_demo", force=True, stdout=output)
        yield output.getvalue()
        transaction.set_rollback(True)

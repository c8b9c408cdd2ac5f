"""Configuration every request reads (a campaign with its offer, source and rules, an API key, the
blocked email domains, a supplier's payout), kept in each process and reloaded everywhere once staff
change any of it; and figures that may be a minute old (a traffic source's recent validity).

A version number in the shared cache (Redis in production) says when: saving configuration bumps it
after the transaction commits, and each process compares it before using what it holds, reading it
once per request (a lead's post reads four or five kinds of configuration; each read of the version
is a round trip to Redis), once per step of a worker's outbox batch (`one_version`), and on every
other use. TTL bounds how stale a process can be
if a bump is lost (the cache was down).
"""

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import transaction

VERSION_KEY = "config:version"
TTL_SECONDS = 60.0

T = TypeVar("T")
_entries: dict[tuple[str, Hashable], tuple[int, float, object]] = {}
_lock = threading.Lock()
_request = threading.local()  # .version: what this thread's current request read, if it read it


def _version() -> int:
    if getattr(_request, "active", False):
        if _request.version is None:
            _request.version = _read_version()
        return int(_request.version)
    return _read_version()


def _read_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, 1, None)
        version = cache.get(VERSION_KEY, 1)
    return int(version)


def cached(namespace: str, key: Hashable, load: Callable[[], T], *, keep: Callable[[T], bool] | None = None) -> T:
    """load() once per process until configuration changes (or TTL passes); its value is shared by
    every request of the process, so callers must not change it. A value `keep` refuses is loaded
    again next time."""
    version, now = _version(), time.monotonic()
    entry = _entries.get((namespace, key))
    if entry is not None and entry[0] == version and now - entry[1] < TTL_SECONDS:
        # Every namespace's values share one dict (of object); this key's load() made this one a T.
        return entry[2]  # type: ignore[return-value]
    value = load()
    if keep is None or keep(value):
        with _lock:
            _entries[(namespace, key)] = (version, now, value)
    return value


def config_changed(**_signal_arguments) -> None:
    """Every process reloads on its next read once the change that calls this has committed; this
    one drops what it holds at once (it may read the change before the commit, the others may not)."""
    forget()
    transaction.on_commit(_bump)


def forget() -> None:
    """Drop what this process holds (tests; the next read loads again)."""
    with _lock:
        _entries.clear()


def _bump() -> None:
    forget()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no version yet (a new or flushed cache): any new number will do
        cache.set(VERSION_KEY, int(time.time()), None)


@contextmanager
def one_version() -> Iterator[None]:
    """Read the version at most once inside, as a request does (a worker's batch prepares a hundred
    rows, each asking for its campaign and payout); nested in a request, the request's read serves."""
    if getattr(_request, "active", False):
        yield
        return
    _request_begins()
    try:
        yield
    finally:
        _request_ends()


def _request_begins(**_signal_arguments) -> None:
    _request.active, _request.version = True, None


def _request_ends(**_signal_arguments) -> None:
    _request.active, _request.version = False, None


request_started.connect(_request_begins, dispatch_uid="config_cache_request_begins")
request_finished.connect(_request_ends, dispatch_uid="config_cache_request_ends")

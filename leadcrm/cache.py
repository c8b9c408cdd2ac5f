"""A Redis cache that outlives Redis.

Throttle counters and cached reads live in Redis so every web process shares them. When Redis
cannot be reached, a cache error must not turn a partner's lead into a 500: reads and writes go to a
memory cache of this process (so throttles count per process for a while), a warning is logged once
per outage, and Redis is tried again every few seconds.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 5.0  # after an error, this process uses its own memory before trying Redis again
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
OPERATIONS = (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "decr",
    "set_many",
    "delete_many",
    "clear",
)


class KeptClientRedisCacheClient(RedisCacheClient):
    """Django's client builds a new redis.Redis for every operation, and each one builds its table of
    some 80 reply callbacks: a quarter of a millisecond per cache read, more than the read itself.
    A redis.Redis over a connection pool is thread-safe, so one per pool is kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's choice of server
        client = self._clients.get(id(pool))
        if client is None:
            # Django's RedisCacheClient attributes, private and absent from django-stubs.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient
        self._fallback = LocMemCache(f"redis-fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._retry_at = 0.0

    def _run(self, operation: str, *args, **kwargs):
        return self._either(
            lambda: getattr(RedisCache, operation)(self, *args, **kwargs),
            lambda: getattr(self._fallback, operation)(*args, **kwargs),
        )

    def count_in_windows(self, key: str, window: int, seconds: int) -> tuple[int, int]:
        """`count_in_windows` in one round trip: the last window's count and this one's increment."""

        def in_redis() -> tuple[int, int]:
            # The Redis backend's client method, which BaseCache (the stubs' type of _cache) lacks.
            client = self._cache.get_client(key, write=True)  # type: ignore[attr-defined]
            pipeline = client.pipeline(transaction=False)
            this_window = self.make_and_validate_key(f"{key}:{window}")
            pipeline.get(self.make_and_validate_key(f"{key}:{window - 1}"))
            pipeline.incr(this_window)
            pipeline.expire(this_window, 2 * seconds)  # read as the last window during the next one
            last, this, _ = pipeline.execute()
            return int(last or 0), int(this)

        return self._either(in_redis, lambda: count_in_windows(self._fallback, key, window, seconds))

    def _either(self, in_redis: Callable[[], T], in_memory: Callable[[], T]) -> T:
        if self._retry_at and time.monotonic() < self._retry_at:
            return in_memory()
        try:
            result = in_redis()
        except UNREACHABLE as error:
            if not self._retry_at:
                logger.warning(
                    "Redis cache unreachable (%s): this process counts throttles and caches in its own "
                    "memory until it answers again",
                    type(error).__name__,
                )
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return in_memory()
        if self._retry_at:
            logger.warning("Redis cache reachable again")
            self._retry_at = 0.0
        return result


def _delegate(operation: str):
    def method(self, *args, **kwargs):
        return self._run(operation, *args, **kwargs)

    method.__name__ = operation
    method.__doc__ = f"RedisCache.{operation}, or this process's memory while Redis is unreachable."
    return method


for _operation in OPERATIONS:
    setattr(ResilientRedisCache, _operation, _delegate(_operation))


def count_in_windows(cache: BaseCache, key: str, window: int, seconds: int) -> tuple[int, int]:
    """Count one hit of `key` in fixed window number `window` (of `seconds` each): how many hits the
    window before had, and how many this one has now. Counted atomically (an increment), so processes
    counting at once lose none; on Redis in one round trip."""
    # Asked by attribute, not by class: DRF's throttles hold `django.core.cache.cache`, a proxy that
    # passes attributes on to this thread's cache but is no ResilientRedisCache itself (by class, the
    # throttle fell back to four round trips: get, add, exists, incr).
    in_one_round_trip = getattr(cache, "count_in_windows", None)
    if in_one_round_trip is not None:
        return in_one_round_trip(key, window, seconds)
    last = cache.get(f"{key}:{window - 1}", 0)
    if cache.add(f"{key}:{window}", 1, 2 * seconds):
        return last, 1
    try:
        return last, cache.incr(f"{key}:{window}")
    except ValueError:  # expired in between
        cache.set(f"{key}:{window}", 1, 2 * seconds)
        return last, 1

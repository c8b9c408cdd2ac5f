"""A Redis cache that outlives Redis.

Throttle counters and cached reads live in Redis so every web process shares them. When Redis
cannot be reached, a cache error must not turn a partner's lead into a 500: reads and writes go to a
memory cache of this process (so throttles count per process for a while), a warning is logged once
per outage, and Redis is tried again every few seconds.
"""

import logging
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

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


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._fallback = LocMemCache(f"redis-fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._retry_at = 0.0

    def _run(self, operation: str, *args, **kwargs):
        if self._retry_at and time.monotonic() < self._retry_at:
            return getattr(self._fallback, operation)(*args, **kwargs)
        try:
            result = getattr(RedisCache, operation)(self, *args, **kwargs)
        except UNREACHABLE as error:
            if not self._retry_at:
                logger.warning(
                    "Redis cache unreachable (%s): this process counts throttles and caches in its own "
                    "memory until it answers again",
                    type(error).__name__,
                )
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return getattr(self._fallback, operation)(*args, **kwargs)
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

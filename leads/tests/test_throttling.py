"""The API's rate limits count each caller's requests with one atomic increment per request (on Redis,
one round trip), over a sliding minute: a busy partner's count is a number, not a list of times that
two processes would overwrite."""

import threading

import pytest
import redis
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.test import RequestFactory

from leadcrm.cache import count_in_windows
from leads.api.throttling import PostbackIpThrottle

pytestmark = pytest.mark.slow


def test_hits_counted_from_many_threads_at_once_on_redis_lose_none(private_redis, settings):
    _, port = private_redis
    settings.CACHES = {
        "default": {"BACKEND": "leadcrm.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    cache = caches["default"]
    counts: list[int] = []

    def hit_fifty_times():
        for _ in range(50):
            counts.append(count_in_windows(cache, "throttle:partner:7", 1000, 60)[1])

    threads = [threading.Thread(target=hit_fifty_times) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(counts) == list(range(1, 401))  # each hit saw its own count: none lost or repeated
    assert count_in_windows(cache, "throttle:partner:7", 1001, 60) == (400, 1)  # the next window
    assert count_in_windows(cache, "throttle:partner:7", 1003, 60) == (0, 1)  # two windows on: forgotten


def test_a_throttle_counts_through_django_s_cache_proxy_in_one_round_trip(private_redis, settings):
    """DRF's throttles hold `django.core.cache.cache`, a proxy of the configured cache: on Redis they
    count with one pipelined GET, INCR and EXPIRE, like the cache itself, not a command per step."""
    _, port = private_redis
    settings.CACHES = {
        "default": {"BACKEND": "leadcrm.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    server = redis.Redis(port=port)
    server.config_resetstat()

    assert count_in_windows(default_cache, "throttle:partner:7", 1000, 60) == (0, 1)
    assert count_in_windows(default_cache, "throttle:partner:7", 1000, 60) == (0, 2)

    stats = server.info("commandstats")
    commands = {name.removeprefix("cmdstat_"): figures["calls"] for name, figures in stats.items()}
    commands.pop("config|resetstat")
    assert commands == {"get": 2, "incrby": 2, "expire": 2}  # not also SET (add) and EXISTS


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_the_minute_before_weighs_by_how_much_of_it_is_still_within_a_minute(backend, request, settings):
    if backend == "redis":
        _, port = request.getfixturevalue("private_redis")
        settings.CACHES = {
            "default": {"BACKEND": "leadcrm.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
        }
    settings.POSTBACK_REQUESTS_PER_MINUTE = 4
    request = RequestFactory().get("/postback/", REMOTE_ADDR="203.0.113.9")
    clock = [6000.0 + 50]  # 50 s into a minute

    def allowed_at(moment: float) -> bool:
        clock[0] = moment
        throttle = PostbackIpThrottle()
        throttle.timer = lambda: clock[0]
        return throttle.allow_request(request, None)  # type: ignore[arg-type]

    assert [allowed_at(6050.0) for _ in range(5)] == [True, True, True, True, False]
    # 15 s into the next minute, 45 s of the last one (five requests counted) are within a minute.
    assert not allowed_at(6075.0)
    throttle = PostbackIpThrottle()
    throttle.timer = lambda: 6075.0
    assert not throttle.allow_request(request, None)  # type: ignore[arg-type]
    assert throttle.wait() == 45.0  # Retry-After: when this minute ends
    # 55 s in, 5 s of it remain: 5 x 5/60 + the three of this minute so far, under four.
    assert allowed_at(6115.0)

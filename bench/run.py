"""Benchmarks: each reports a rate and its ratio to a floor measured in the same run, and returns its
figures; the run ends with one table of them all.

`make bench` (SQLite) or `DATABASE_URL=postgres://... make bench` runs the throughput benchmarks;
name modules to run others (`bench/run.py bench_reports bench_audience`). A throwaway test database
is created and dropped. Figures are machine-dependent; the ratios are what to compare.

With a Redis at 127.0.0.1:6379, servers and workers use it as production does (docker-compose): the
broker in its database 14, the cache in 15, both emptied before and after. Without one, tasks go to a
throwaway broker folder nobody consumes and each process has its own cache.
"""

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings_test")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
REDIS_BROKER, REDIS_CACHE = "redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/15"


def _redis_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


# BENCH_REDIS=0: the folder broker even when a Redis runs (a machine where others use its databases).
REDIS = os.environ.get("BENCH_REDIS", "1") != "0" and _redis_running()
if REDIS:
    os.environ["CELERY_BROKER_URL"] = REDIS_BROKER
    os.environ["CACHE_URL"] = "rediscache" + REDIS_CACHE.removeprefix("redis")
else:
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    os.environ["CELERY_BROKER_DIR"] = tempfile.mkdtemp(prefix="leadcrm-bench-broker-")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from bench.figures import Figure, table  # noqa: E402

# What `make bench` runs: the paths with throughput targets. bench_audience, bench_reports,
# bench_suppression, bench_audit and bench_retention take long (millions of rows) or measure a cost
# rather than a throughput target, and are run by name.
THROUGHPUT = ("bench_clicks", "bench_leads", "bench_api", "bench_deliveries", "bench_auction", "bench_nurture")
BENCHMARKS = (*THROUGHPUT, "bench_audience", "bench_reports", "bench_suppression", "bench_audit", "bench_retention")


def timed(function, count: int) -> float:
    """Operations per second of calling function(i) for i in range(count)."""
    started = time.perf_counter()
    for index in range(count):
        function(index)
    return count / (time.perf_counter() - started)


def _empty_redis() -> None:
    if REDIS:
        import redis

        for url in (REDIS_BROKER, REDIS_CACHE):
            redis.Redis.from_url(url).flushdb()


def main() -> None:
    selected = sys.argv[1:] or THROUGHPUT
    unknown = set(selected) - set(BENCHMARKS)
    assert not unknown, f"no such benchmark: {', '.join(sorted(unknown))}; there are {', '.join(BENCHMARKS)}"
    _empty_redis()
    old_config = setup_databases(verbosity=0, interactive=False)
    figures: list[Figure] = []
    started = time.perf_counter()
    try:
        print(
            f"database: {connection.vendor}; broker and cache: {'Redis' if REDIS else 'folder and per process'}; "
            f"load average at the start {' / '.join(f'{figure:.2f}' for figure in os.getloadavg())}"
        )
        for name in selected:
            module = __import__(f"bench.{name}", fromlist=["run"])
            figures += module.run(timed) or []
    finally:
        teardown_databases(old_config, verbosity=0)
        _empty_redis()
    load = " / ".join(f"{figure:.2f}" for figure in os.getloadavg())
    left_out = [name for name in BENCHMARKS if name not in selected]
    print(
        f"\n## Every ratio: {', '.join(selected)} on {connection.vendor}"
        + (f" ({', '.join(left_out)} not run: name them to run them)" if left_out else "")
        + f"; {time.perf_counter() - started:.0f} s, load average at the end {load}\n"
    )
    print(table(figures))


if __name__ == "__main__":
    main()

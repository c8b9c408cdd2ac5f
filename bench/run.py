"""Benchmarks: each reports a rate and its ratio to a floor measured in the same run.

Run with `make bench` (SQLite) or `DATABASE_URL=postgres://... make bench`. A throwaway test
database is created and dropped. Figures are machine-dependent; the ratios are what to compare.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings_test")
# Tasks are really published, as in production, to a throwaway broker folder nobody consumes.
os.environ["CELERY_BROKER_URL"] = "filesystem://"
os.environ["CELERY_BROKER_DIR"] = tempfile.mkdtemp(prefix="leadcrm-bench-broker-")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

BENCHMARKS = (
    "bench_clicks",
    "bench_leads",
    "bench_api",
    "bench_deliveries",
    "bench_nurture",
    "bench_audience",
    "bench_reports",
)


def timed(function, count: int) -> float:
    """Operations per second of calling function(i) for i in range(count)."""
    started = time.perf_counter()
    for index in range(count):
        function(index)
    return count / (time.perf_counter() - started)


def main() -> None:
    selected = sys.argv[1:] or BENCHMARKS
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        print(f"database: {connection.vendor}")
        for name in selected:
            module = __import__(f"bench.{name}", fromlist=["run"])
            module.run(timed)
    finally:
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()

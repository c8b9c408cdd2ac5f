"""Settings for benchmark servers: the test settings plus the floor view's URL."""

from leadcrm.settings_test import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DEBUG = False
LOGGING["root"]["level"] = "WARNING"  # noqa: F405  one log line per request would be the bottleneck

"""Settings for benchmark servers: the test settings plus the floor view's URL."""

import warnings

from leadcrm.settings_test import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DEBUG = False
LOGGING["root"]["level"] = "WARNING"  # noqa: F405  one log line per request would be the bottleneck
# Behind a proxy, as in production: a benchmark that plays visitors from many addresses says which in
# this header (a form post's IP is checked for velocity); without it the socket's address counts.
CLIENT_IP_HEADER = "X-Forwarded-For"

# Static files are not collected for a benchmark; WhiteNoise's warning would repeat in every worker.
warnings.filterwarnings("ignore", message="No directory at")

"""Test settings: the real settings, with a fixed key and plain HTTP for the test client."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("HTTPS_ONLY", "false")
os.environ.setdefault("DJANGO_READ_DOT_ENV_FILE", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("COUNTRY_HEADER", "CF-IPCountry")  # tests play a site behind Cloudflare
# Tests log staff in with the password alone; the two-factor tests (leadcrm/staff_login) turn it on.
os.environ.setdefault("REQUIRE_STAFF_2FA", "false")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Never a real bucket from the shell's environment: tests that need S3 start their own server.
STORAGES["default"] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}  # noqa: F405

# Tasks sent after commit run at once in the test process; tests that need a real worker start one.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)  # noqa: F405
CELERY_TASK_EAGER_PROPAGATES = True

# A parallel run (pytest -n, as in make test) migrates the database named here once and gives each
# worker a copy, its name ending _gw0, _gw1 ... (leadcrm/tests/databases.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # One database per test run, so runs side by side (and benchmarks) never drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: other connections (threads, a Celery worker process) then
    # wait on SQLite's real locks with the busy timeout instead of failing with "table is locked".
    # One file per test run, so runs side by side never share (and corrupt) a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
    VAR_DIR.mkdir(exist_ok=True)  # noqa: F405

MEDIA_ROOT = VAR_DIR / f"test-media-{os.getpid()}"  # noqa: F405  uploads from tests stay out of media/

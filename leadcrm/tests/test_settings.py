"""Settings come from the environment and are secure by default (checked in a fresh process)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD_KEY = "k3y-for-settings-tests-only-9f8e7d6c5b4a3928170615243342516aa"
# Each starts Python afresh and imports Django and the settings (a second or two): marked slow.
FRESH_PROCESS = pytest.mark.slow


def run_manage(*args: str, **env_vars: str) -> subprocess.CompletedProcess:
    return run_python("manage.py", *args, **env_vars)


def run_python(*args: str, **env_vars: str) -> subprocess.CompletedProcess:
    """`python <args>` in the project directory, with nothing of this shell's environment but what is given."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "leadcrm.settings",
        "DJANGO_READ_DOT_ENV_FILE": "false",
        **env_vars,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings_of(*names: str, **env_vars: str) -> dict:
    """The named settings as a fresh process reads them from this environment (the settings module
    alone: what start-up reads, without the second of setting up every app that `shell` costs)."""
    code = "import json; from django.conf import settings as s; print(json.dumps({n: str(getattr(s, n, None)) for n in %r}))"
    result = run_python("-c", code % (names,), **env_vars)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@FRESH_PROCESS
def test_production_settings_pass_the_deploy_check_with_only_secret_key_and_hosts():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="crm.example.com"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@FRESH_PROCESS
def test_missing_secret_key_in_production_stops_start_up_with_a_clear_message():
    result = run_manage("check", ALLOWED_HOSTS="crm.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@FRESH_PROCESS
def test_debug_mode_runs_without_a_secret_key():
    values = settings_of("DEBUG", "SECURE_SSL_REDIRECT", DEBUG="true")
    assert values == {"DEBUG": "True", "SECURE_SSL_REDIRECT": "False"}


@FRESH_PROCESS
def test_plain_http_deployment_can_turn_https_only_off_explicitly():
    secure = settings_of("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", SECRET_KEY=GOOD_KEY)
    assert secure == {"SECURE_SSL_REDIRECT": "True", "SESSION_COOKIE_SECURE": "True", "SECURE_HSTS_SECONDS": "31536000"}
    plain = settings_of(
        "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", SECRET_KEY=GOOD_KEY, HTTPS_ONLY="false"
    )
    assert plain == {"SECURE_SSL_REDIRECT": "False", "SESSION_COOKIE_SECURE": "False", "SECURE_HSTS_SECONDS": "0"}


@FRESH_PROCESS
def test_database_broker_email_and_time_zone_come_from_the_environment():
    values = settings_of(
        "DATABASES",
        "CELERY_BROKER_URL",
        "EMAIL_BACKEND",
        "EMAIL_HOST",
        "TIME_ZONE",
        "ALLOWED_HOSTS",
        SECRET_KEY=GOOD_KEY,
        DATABASE_URL="postgres://crm:pw@db.internal:5433/leadcrm",
        CELERY_BROKER_URL="redis://cache.internal:6379/2",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.internal:587",
        TIME_ZONE="Europe/Berlin",
        ALLOWED_HOSTS="a.example,b.example",
    )
    assert "'HOST': 'db.internal'" in values["DATABASES"] and "'PORT': 5433" in values["DATABASES"]
    assert "postgresql" in values["DATABASES"]
    assert values["CELERY_BROKER_URL"] == "redis://cache.internal:6379/2"
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["EMAIL_HOST"] == "smtp.internal"
    assert values["TIME_ZONE"] == "Europe/Berlin"
    assert values["ALLOWED_HOSTS"] == "['a.example', 'b.example']"


@FRESH_PROCESS
def test_defaults_need_no_server_sqlite_file_and_filesystem_broker():
    values = settings_of("DATABASES", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", DEBUG="true")
    assert "sqlite3" in values["DATABASES"] and "db.sqlite3" in values["DATABASES"]
    assert values["CELERY_BROKER_URL"] == "filesystem://"
    assert "celery-broker" in values["CELERY_BROKER_TRANSPORT_OPTIONS"]


@pytest.mark.django_db
def test_health_endpoint_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@FRESH_PROCESS
def test_makemigrations_runs_on_a_checkout_without_a_secret_but_serving_still_needs_one():
    assert run_manage("makemigrations", "--check", "--dry-run").returncode == 0
    assert "SECRET_KEY is not set" in run_manage("check").stderr


def env_example() -> dict[str, str]:
    """The settings .env.example documents for production (uncommented KEY=value lines)."""
    values = {}
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@FRESH_PROCESS
def test_the_documented_production_settings_as_docker_compose_wires_them_pass_the_deploy_check():
    production = env_example() | {
        "SECRET_KEY": GOOD_KEY,
        # docker-compose.yml's wiring between the services.
        "DATABASE_URL": "postgres://leadcrm:pw@postgres:5432/leadcrm",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
        "CACHE_URL": "rediscache://redis:6379/1",
    }
    assert production["DEBUG"] == "false" and production["HTTPS_ONLY"] == "true"
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    values = settings_of("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY", **production)
    assert "'upgrade-insecure-requests': True" in values["CONTENT_SECURITY_POLICY"]
    assert values["CONTENT_SECURITY_POLICY_REPORT_ONLY"] == "None"


@FRESH_PROCESS
def test_the_content_security_policy_only_reports_when_asked_to_and_names_the_report_address():
    values = settings_of(
        "CONTENT_SECURITY_POLICY",
        "CONTENT_SECURITY_POLICY_REPORT_ONLY",
        SECRET_KEY=GOOD_KEY,
        CSP_REPORT_ONLY="true",
        CSP_REPORT_URI="https://csp-reports.example.com/leadcrm",
    )
    assert values["CONTENT_SECURITY_POLICY"] == "None"
    assert "'report-uri': ['https://csp-reports.example.com/leadcrm']" in values["CONTENT_SECURITY_POLICY_REPORT_ONLY"]
    assert (
        run_manage("check", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="crm.example.com", CSP_REPORT_ONLY="true").returncode
        == 0
    )

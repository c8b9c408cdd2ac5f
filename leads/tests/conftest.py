import shutil
import socket
import subprocess
import time

import pytest

from campaigns.tests.factories import CampaignFactory, LandingPageFactory
from leads.services import CaptureContext, lead_capture, parse_submission
from leads.services.capture import CERTIFIED_DOORS

DESKTOP_BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)


@pytest.fixture
def campaign(db):
    campaign = CampaignFactory(slug="solar-us", offer__name="Solar quote")
    LandingPageFactory(campaign=campaign, slug="solar-form", action="quote")
    return campaign


@pytest.fixture
def capture(campaign):
    """Run the real pipeline: capture(email=..., phone=..., context overrides...) -> Lead."""

    def run(*, campaign_=None, door="api", context=None, **data):
        data.setdefault("action", "quote")
        if door in CERTIFIED_DOORS:  # our own forms: sent by a browser, which names itself
            context = {"user_agent": DESKTOP_BROWSER, **(context or {})}
        result = lead_capture(
            campaign=campaign_ or campaign,
            submission=parse_submission(data),
            context=CaptureContext(door=door, **(context or {})),
        )
        return result.lead

    return run


@pytest.fixture
def private_redis():
    """A redis-server of this test's own on a free port, without persistence: (process, port). Tests
    that stop it or share it between processes never meet another test's (or another run's) keys."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield server, port
    server.kill()
    server.wait()


@pytest.fixture
def database_refuses_first_name(db):
    """A trigger that makes the database itself refuse a lead with this first name, as it refuses a
    value that does not fit (on PostgreSQL a DataError, on SQLite a constraint error); rolled back
    with the test."""
    from django.db import connection

    def install(first_name: str) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE FUNCTION refuse_first_name() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.first_name = '{first_name}' THEN "
                    "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22001'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
                cursor.execute(
                    "CREATE TRIGGER refuse_first_name BEFORE INSERT ON leads_lead "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_first_name()"
                )
            else:
                cursor.execute(
                    "CREATE TRIGGER refuse_first_name BEFORE INSERT ON leads_lead "
                    f"WHEN NEW.first_name = '{first_name}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )

    return install

import shutil
import socket
import subprocess
import time

import pytest

from campaigns.tests.factories import CampaignFactory, LandingPageFactory
from leads.services import CaptureContext, lead_capture, parse_submission


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

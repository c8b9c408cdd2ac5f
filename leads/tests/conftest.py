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

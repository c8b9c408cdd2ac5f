import pytest

from campaigns.models import Campaign, LandingPage, QuizQuestion
from campaigns.services import campaign_activate, campaign_duplicate, campaign_pause
from campaigns.tests.factories import CampaignFactory, DailyStatFactory, LandingPageFactory, QuizQuestionFactory
from leadcrm.errors import Conflict

pytestmark = pytest.mark.django_db


def test_draft_with_a_landing_page_can_be_activated_then_paused():
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    LandingPageFactory(campaign=campaign)

    campaign_activate(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == "active"
    campaign_pause(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_campaign_without_landing_destination_cannot_be_activated():
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)

    with pytest.raises(Conflict, match="add an active landing page or a landing URL"):
        campaign_activate(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_ended_campaign_cannot_be_reactivated_or_paused():
    campaign = CampaignFactory(status=Campaign.Status.ENDED, landing_url="https://offer.example/")

    with pytest.raises(Conflict, match="cannot go from ended to active"):
        campaign_activate(campaign=campaign)
    with pytest.raises(Conflict, match="cannot go from ended to paused"):
        campaign_pause(campaign=campaign)


def test_duplicate_is_a_draft_copy_with_pages_and_questions_but_no_stats():
    campaign = CampaignFactory(slug="native-quiz", target_countries=["US", "CA"], target_device_types=["mobile"])
    page = LandingPageFactory(campaign=campaign, slug="quiz-page", kind=LandingPage.Kind.QUIZ)
    QuizQuestionFactory(landing_page=page, key="timeline", options=["Now", "Later"])
    DailyStatFactory(campaign=campaign)

    copy = campaign_duplicate(campaign=campaign)
    second = campaign_duplicate(campaign=campaign)

    assert (copy.slug, second.slug) == ("native-quiz-copy", "native-quiz-copy-2")
    assert copy.status == "draft" and copy.name == f"{campaign.name} (copy)"
    assert copy.target_countries == ["US", "CA"] and copy.target_device_types == ["mobile"]
    copied_page = copy.landing_pages.get()
    assert copied_page.slug == "quiz-page-copy" and copied_page.pk != page.pk
    assert list(QuizQuestion.objects.filter(landing_page=copied_page).values_list("key", "options")) == [
        ("timeline", ["Now", "Later"])
    ]
    assert not copy.daily_stats.exists()
    assert campaign.landing_pages.get().pk == page.pk

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import Campaign, LandingPage, TrafficSource
from campaigns.tests.factories import (
    CampaignFactory,
    LandingPageFactory,
    OfferFactory,
    QuizQuestionFactory,
    TrafficSourceFactory,
)

pytestmark = pytest.mark.django_db


def test_postback_template_with_known_macros_is_accepted_and_fills_url_encoded_values():
    source = TrafficSourceFactory(postback_url_template="https://t.example/pb?cid={click_id}&p={payout}&s={status}")
    source.full_clean()

    url = source.render_postback_url(click_id="a b&c", payout="12.50", status="approved")

    assert url == "https://t.example/pb?cid=a%20b%26c&p=12.50&s=approved"


@pytest.mark.parametrize(
    "template, message",
    [
        ("https://t.example/pb?cid={clickid}", "Unknown macros: {clickid}."),
        ("https://t.example/pb?cid={click_id", "Broken macro braces"),
        ("ftp://t.example/pb?cid={click_id}", "Enter a valid URL."),
        ("not a url {click_id}", "Enter a valid URL."),
        ("https://t.example/pb?cid={click_id}&p={payout:.2f}", "without a format or conversion: {payout}."),
        ("https://t.example/pb?cid={click_id!z}", "without a format or conversion: {click_id}."),
        ("https://t.example/pb?p={payout:>{w}}", "without a format or conversion: {payout}."),
    ],
)
def test_postback_template_is_validated_when_saved(template, message):
    source = TrafficSource(name="S", kind=TrafficSource.Kind.POP, postback_url_template=template)

    with pytest.raises(ValidationError) as caught:
        source.full_clean()

    assert message in str(caught.value.message_dict["postback_url_template"])


def test_targeting_countries_must_be_iso_codes():
    campaign = CampaignFactory.build(
        traffic_source=TrafficSourceFactory(), offer=OfferFactory(), target_countries=["US", "XX", "United States"]
    )

    with pytest.raises(ValidationError) as caught:
        campaign.full_clean()

    assert caught.value.message_dict["target_countries"] == ["Not ISO 3166 alpha-2 country codes: XX, United States."]


def test_campaign_dates_and_budgets_must_make_sense():
    campaign = CampaignFactory.build(
        traffic_source=TrafficSourceFactory(),
        offer=OfferFactory(),
        start_date="2026-05-10",
        end_date="2026-05-01",
        daily_budget=500,
        total_budget=100,
    )

    with pytest.raises(ValidationError) as caught:
        campaign.full_clean()

    assert caught.value.message_dict == {
        "end_date": ["The end date is before the start date."],
        "daily_budget": ["The daily budget is larger than the total budget."],
    }


def test_targeting_mismatches_ignore_unknown_values_and_compare_carriers_case_insensitively():
    campaign = Campaign(
        target_countries=["US"], target_operating_systems=["android"], target_carriers=["Verizon", "T-Mobile"]
    )

    assert campaign.targeting_mismatches(country="", os="", carrier="") == []
    assert campaign.targeting_mismatches(country="US", os="android", carrier="t-mobile") == []
    assert campaign.targeting_mismatches(country="US", os="ios", carrier="Vodafone") == [
        "off_target_os: ios not in android",
        "off_target_carrier: Vodafone not in Verizon, T-Mobile",
    ]


def test_offer_currency_must_be_iso_4217():
    offer = OfferFactory.build(advertiser=OfferFactory().advertiser, currency="XYZ")
    with pytest.raises(ValidationError) as caught:
        offer.full_clean()
    assert caught.value.message_dict["currency"] == ["'XYZ' is not an ISO 4217 currency code."]


def test_landing_page_rules():
    page = LandingPageFactory.build(
        campaign=CampaignFactory(),
        fields=["first_name"],
        required_fields=["email"],
        consent_required=True,
        consent_text="",
    )

    with pytest.raises(ValidationError) as caught:
        page.full_clean()

    assert caught.value.message_dict == {
        "required_fields": ["Required but not asked: email."],
        "fields": ["Ask for an email or a phone, or there is no way to reach the lead."],
        "consent_text": ["Consent is required, so write the text the visitor agrees to."],
    }
    prelander = LandingPageFactory.build(campaign=page.campaign, kind=LandingPage.Kind.PRELANDER, fields=[])
    with pytest.raises(ValidationError, match="needs the URL"):
        prelander.full_clean()


def test_choice_quiz_question_needs_two_options():
    question = QuizQuestionFactory(options=["Only one"])
    with pytest.raises(ValidationError, match="at least two answer options"):
        question.full_clean()

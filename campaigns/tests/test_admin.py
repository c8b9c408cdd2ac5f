import datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, DailyStat
from campaigns.services import advertiser_for_postback_token
from campaigns.tests.factories import (
    AdvertiserFactory,
    CampaignFactory,
    ClickFactory,
    DailyStatFactory,
    LandingPageFactory,
    OfferFactory,
    QuizQuestionFactory,
    TrafficSourceFactory,
)

pytestmark = pytest.mark.django_db

MODELS = ("trafficsource", "advertiser", "offer", "campaign", "landingpage", "dailystat", "click")


@pytest.fixture
def catalogue():
    campaign = CampaignFactory(slug="push-us", target_countries=["US", "CA"])
    page = LandingPageFactory(campaign=campaign)
    QuizQuestionFactory(landing_page=page)
    DailyStatFactory(campaign=campaign)
    ClickFactory(campaign=campaign)
    return campaign


def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "group, can_view, can_change",
    [
        (None, set(MODELS), set(MODELS) - {"click"}),
        ("Marketing", set(MODELS), set(MODELS) - {"click"}),
        ("Managers", set(MODELS), set(MODELS) - {"click"}),
        ("Sales", {"trafficsource", "advertiser", "offer", "campaign", "landingpage"}, set()),
    ],
)
def test_each_group_sees_the_admin_pages_its_permissions_allow(
    client, staff_user_in, catalogue, group, can_view, can_change
):
    client = logged_in(client, staff_user_in(group))
    assert client.get(reverse("admin:index")).status_code == 200

    for model in MODELS:
        changelist = client.get(reverse(f"admin:campaigns_{model}_changelist"))
        assert changelist.status_code == (200 if model in can_view else 403), model
        instance = {
            "trafficsource": catalogue.traffic_source,
            "advertiser": catalogue.offer.advertiser,
            "offer": catalogue.offer,
            "campaign": catalogue,
            "landingpage": catalogue.landing_pages.get(),
            "dailystat": catalogue.daily_stats.get(),
            "click": catalogue.clicks.get(),
        }[model]
        change_page = client.get(reverse(f"admin:campaigns_{model}_change", args=[instance.pk]))
        assert change_page.status_code == (200 if model in can_view else 403), model
        if model in can_view:
            # A read-only page has no save button.
            assert (b'name="_save"' in change_page.content) == (model in can_change), model


def test_sales_cannot_change_a_campaign_by_posting(client, staff_user_in, catalogue):
    client = logged_in(client, staff_user_in("Sales"))
    response = client.post(reverse("admin:campaigns_campaign_change", args=[catalogue.pk]), {"name": "Hijacked"})
    assert response.status_code == 403
    assert Campaign.objects.get(pk=catalogue.pk).name != "Hijacked"


def test_campaign_changelist_shows_metrics_with_a_fixed_number_of_queries(
    client, superuser, django_assert_max_num_queries
):
    def add_campaigns(count):
        for _ in range(count):
            campaign = CampaignFactory()
            DailyStatFactory(campaign=campaign, spend=Decimal("10.25"), clicks=40, impressions=4000)
            DailyStatFactory(
                campaign=campaign, date=timezone.localdate() - datetime.timedelta(days=2), spend=Decimal("5")
            )
            ClickFactory.create_batch(3, campaign=campaign)

    client = logged_in(client, superuser)
    url = reverse("admin:campaigns_campaign_changelist")
    add_campaigns(2)
    client.get(url)  # warm caches (content types, session)
    with django_assert_max_num_queries(12) as small:
        client.get(url)
    add_campaigns(25)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)

    assert response.status_code == 200
    rows = response.context["cl"].result_list
    assert len(rows) == 27
    first = rows[0].metrics
    assert (first["media_spend"], first["clicks"], first["impressions"], first["tracked_clicks"]) == (
        Decimal("15.25"),
        140,
        14000,
        3,
    )
    assert b"15.25" in response.content


def test_campaign_changelist_filters_by_kind_status_advertiser_and_country(client, superuser):
    advertiser = AdvertiserFactory(name="SolarBright")
    push_us = CampaignFactory(
        name="Push US",
        traffic_source=TrafficSourceFactory(kind="push"),
        offer=OfferFactory(advertiser=advertiser),
        target_countries=["US"],
    )
    native_gb = CampaignFactory(
        name="Native GB", traffic_source=TrafficSourceFactory(kind="native"), target_countries=["GB"]
    )
    paused = CampaignFactory(name="Paused", status=Campaign.Status.PAUSED)
    client = logged_in(client, superuser)
    url = reverse("admin:campaigns_campaign_changelist")

    def names(**params):
        return sorted(c.name for c in client.get(url, params).context["cl"].result_list)

    assert names(traffic_source__kind__exact="native") == ["Native GB"]
    assert names(status__exact="paused") == ["Paused"]
    assert names(offer__advertiser__id__exact=advertiser.pk) == ["Push US"]
    assert names(country="US") == ["Push US"]
    assert names(country="GB") == ["Native GB"]
    assert paused.name in names()
    assert push_us.pk and native_gb.pk


def test_campaign_form_saves_targeting_lists(client, superuser):
    source, offer = TrafficSourceFactory(), OfferFactory()
    client = logged_in(client, superuser)

    response = client.post(
        reverse("admin:campaigns_campaign_add"),
        {
            "name": "Native solar",
            "slug": "native-solar",
            "status": "draft",
            "traffic_source": source.pk,
            "offer": offer.pk,
            "bid_model": "cpc",
            "bid": "0.35",
            "target_countries": "us, ca,\nGB",
            "target_device_types": ["mobile", "tablet"],
            "target_operating_systems": ["android"],
            "target_carriers": "Verizon, AT&T",
            "target_segments": "home owners",
            "postback_events": ["valid", "converted"],
            "postback_valid_payout": "2.50",
            "postback_return_reversal": "zero",
            "placement_min_leads": "30",
            "placement_min_validity_rate": "60",
            "landing_pages-TOTAL_FORMS": "0",
            "landing_pages-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(slug="native-solar")
    assert (campaign.postback_events, campaign.postback_valid_payout, campaign.postback_return_reversal) == (
        ["valid", "converted"],
        Decimal("2.50"),
        "zero",
    )
    assert campaign.target_countries == ["US", "CA", "GB"]
    assert campaign.target_device_types == ["mobile", "tablet"]
    assert campaign.target_carriers == ["Verizon", "AT&T"]
    assert (campaign.placement_min_leads, campaign.placement_min_validity_rate) == (30, Decimal("60"))
    assert campaign.placement_min_conversion_rate is None  # left empty: conversion is not judged
    edit = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert b"US, CA, GB" in edit.content
    # The tracking URL is absolute, with the source's macros, in a box with a copy button.
    # A push source's usual macros fill the click id and sub ids; SITE_URL makes it absolute.
    tracking = "http://127.0.0.1:8000/c/native-solar/?clickid={clickid}&amp;zone={zoneid}&amp;sub1={campaignid}"
    assert f'value="{tracking}&amp;creative={{creativeid}}"'.encode() in edit.content
    assert b'data-copy="tracking-url"' in edit.content


def test_campaign_form_rejects_unknown_countries_with_a_message(client, superuser):
    source, offer = TrafficSourceFactory(), OfferFactory()
    client = logged_in(client, superuser)

    response = client.post(
        reverse("admin:campaigns_campaign_add"),
        {
            "name": "Bad",
            "slug": "bad",
            "status": "draft",
            "traffic_source": source.pk,
            "offer": offer.pk,
            "bid_model": "cpc",
            "bid": "0.1",
            "target_countries": "US, Narnia",
            "landing_pages-TOTAL_FORMS": "0",
            "landing_pages-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "Not ISO 3166 alpha-2 country codes: NARNIA." in response.content.decode()
    assert not Campaign.objects.filter(slug="bad").exists()


def test_status_is_changed_by_actions_not_typed_into_the_form(client, superuser):
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    page = logged_in(client, superuser).get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert b'name="status"' not in page.content


def test_activate_pause_and_duplicate_actions(client, staff_user_in):
    ready = CampaignFactory(name="Ready", status=Campaign.Status.DRAFT)
    LandingPageFactory(campaign=ready)
    no_page = CampaignFactory(name="No page", status=Campaign.Status.DRAFT)
    client = logged_in(client, staff_user_in("Marketing"))
    url = reverse("admin:campaigns_campaign_changelist")

    response = client.post(
        url, {"action": "activate_campaigns", "_selected_action": [ready.pk, no_page.pk]}, follow=True
    )
    text = [str(message) for message in response.context["messages"]]
    assert "No page: add an active landing page or a landing URL before activating." in text
    assert "1 campaign(s) activated." in text
    assert Campaign.objects.get(pk=ready.pk).status == "active"
    assert Campaign.objects.get(pk=no_page.pk).status == "draft"

    client.post(url, {"action": "pause_campaigns", "_selected_action": [ready.pk]})
    assert Campaign.objects.get(pk=ready.pk).status == "paused"

    client.post(url, {"action": "duplicate_campaigns", "_selected_action": [ready.pk]})
    copy = Campaign.objects.get(name="Ready (copy)")
    assert copy.status == "draft" and copy.landing_pages.count() == 1


def test_sales_see_the_campaign_list_without_the_companys_money(client, staff_user_in, catalogue):
    pages = {}
    for group in ("Sales", "Marketing"):
        pages[group] = logged_in(client, staff_user_in(group)).get(reverse("admin:campaigns_campaign_changelist"))

    assert pages["Sales"].status_code == 200 and catalogue.name in pages["Sales"].content.decode()
    columns = {group: [h["text"] for h in page.context["result_headers"]] for group, page in pages.items()}
    assert columns["Marketing"][-5:] == ["Spend", "Leads (valid)", "CPL", "Margin", "ROI"]
    assert not {"Spend", "Leads (valid)", "CPL", "Margin", "ROI"} & set(columns["Sales"])
    assert columns["Sales"][-3:] == columns["Marketing"][-8:-5]  # name, status, source: no actions for sales


def test_sales_gets_no_campaign_actions(client, staff_user_in, catalogue):
    client = logged_in(client, staff_user_in("Sales"))
    response = client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "pause_campaigns", "_selected_action": [catalogue.pk]},
    )
    assert Campaign.objects.get(pk=catalogue.pk).status == "active"
    assert response.status_code in (200, 302, 403)


def test_csv_import_in_the_admin_reports_bad_rows_and_imports_good_files(client, staff_user_in, catalogue):
    client = logged_in(client, staff_user_in("Marketing"))
    url = reverse("admin:campaigns_dailystat_import")
    day = timezone.localdate() - datetime.timedelta(days=5)
    assert b"Import CSV" in client.get(reverse("admin:campaigns_dailystat_changelist")).content

    bad = SimpleUploadedFile(
        "stats.csv", f"date,campaign,clicks,spend\n{day},push-us,5,1.00\n{day},ghost,5,1\n".encode()
    )
    response = client.post(url, {"file": bad})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nothing imported: 1 of 2 rows were rejected." in page
    assert "no campaign with slug &#x27;ghost&#x27;" in page
    assert not DailyStat.objects.filter(date=day).exists()

    good = SimpleUploadedFile("stats.csv", f"date,campaign,clicks,spend\n{day},push-us,5,1.00\n".encode())
    response = client.post(url, {"file": good}, follow=True)
    assert "Daily stats imported: 1 created, 0 updated, 0 unchanged." in [str(m) for m in response.context["messages"]]
    assert DailyStat.objects.get(date=day).clicks == 5


def test_csv_import_names_a_row_with_a_nul_byte_and_imports_the_others_when_asked(client, staff_user_in, catalogue):
    client = logged_in(client, staff_user_in("Marketing"))
    url = reverse("admin:campaigns_dailystat_import")
    day = timezone.localdate() - datetime.timedelta(days=5)
    before = day - datetime.timedelta(days=1)
    data = f"date,campaign,clicks,spend\n{day},push-us,5,1.00\n{day},push\x00-us,7,2\n{before},push-us,3,0.5\n".encode()

    response = client.post(url, {"file": SimpleUploadedFile("stats.csv", data)})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nothing imported: 1 of 3 rows were rejected." in page
    assert "<td>3</td><td>column 2 (campaign) contains a NUL byte (U+0000)</td>" in page
    assert not DailyStat.objects.filter(date__in=[day, before]).exists()

    response = client.post(url, {"file": SimpleUploadedFile("stats.csv", data), "skip_invalid": "on"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "2 created, 0 updated, 0 unchanged; 1 rejected rows skipped." in page
    assert "<td>3</td><td>column 2 (campaign) contains a NUL byte (U+0000)</td>" in page
    assert dict(DailyStat.objects.filter(date__in=[day, before]).values_list("date", "clicks")) == {day: 5, before: 3}


def test_csv_import_is_refused_to_sales(client, staff_user_in):
    client = logged_in(client, staff_user_in("Sales"))
    assert client.get(reverse("admin:campaigns_dailystat_import")).status_code == 403


def test_click_list_filters_off_target_clicks(client, superuser):
    ClickFactory(click_id="on-target")
    ClickFactory(click_id="off-target", off_target_reasons=["off_target_country: DE not in US"])
    client = logged_in(client, superuser)
    url = reverse("admin:campaigns_click_changelist")

    def ids(**params):
        return [click.click_id for click in client.get(url, params).context["cl"].result_list]

    assert ids(targeting="off") == ["off-target"]
    assert ids(targeting="on") == ["on-target"]


def test_new_postback_token_is_shown_once_and_only_its_hash_is_stored(client, superuser):
    advertiser = AdvertiserFactory(name="SolarBright")
    response = logged_in(client, superuser).post(
        reverse("admin:campaigns_advertiser_changelist"),
        {"action": "new_postback_token", "_selected_action": [advertiser.pk]},
    )
    page = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    advertiser.refresh_from_db()
    token = page.split("?token=")[1].split("&amp;")[0]
    assert len(token) >= 40 and token not in advertiser.postback_token_hash
    assert advertiser_for_postback_token(token) == advertiser


def test_a_daily_stat_keeps_the_campaign_offer_source_and_date_it_was_entered_with(client, superuser):
    campaign, other = CampaignFactory(), CampaignFactory()
    client = logged_in(client, superuser)
    day = timezone.localdate()

    added = client.post(
        reverse("admin:campaigns_dailystat_add"),
        {"campaign": campaign.pk, "date": day.isoformat(), "impressions": "100", "clicks": "5", "spend": "2.50"},
    )
    stat = DailyStat.objects.get()
    moved = (day - timezone.timedelta(days=1)).isoformat()
    changed = client.post(
        reverse("admin:campaigns_dailystat_change", args=[stat.pk]),
        {"campaign": other.pk, "date": moved, "impressions": "100", "clicks": "6", "spend": "3.00"},
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    stat.refresh_from_db()
    assert (stat.campaign, stat.offer, stat.traffic_source) == (campaign, campaign.offer, campaign.traffic_source)
    assert (stat.date, stat.clicks, stat.spend) == (day, 6, Decimal("3.0000"))


def test_a_quiz_takes_at_most_the_questions_whose_answers_a_lead_can_hold(client, superuser):
    from campaigns.models import QUIZ_MAX_QUESTIONS, LandingPage
    from campaigns.tests.factories import LandingPageFactory

    page = LandingPageFactory(kind=LandingPage.Kind.QUIZ)
    url = reverse("admin:campaigns_landingpage_change", args=[page.pk])
    client.force_login(superuser)
    shown = client.get(url).context
    form = shown["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items()}
    for inline in shown["inline_admin_formsets"]:
        data |= {f"{inline.formset.prefix}-TOTAL_FORMS": "0", f"{inline.formset.prefix}-INITIAL_FORMS": "0"}

    def with_questions(count: int) -> dict:
        rows = {"questions-TOTAL_FORMS": str(count)}
        for number in range(count):
            rows |= {
                f"questions-{number}-position": str(number),
                f"questions-{number}-key": f"q{number}",
                f"questions-{number}-text": f"Question {number}?",
                f"questions-{number}-kind": "text",
                f"questions-{number}-options": "",
            }
        return data | rows

    refused = client.post(url, with_questions(QUIZ_MAX_QUESTIONS + 1))

    assert refused.status_code == 200
    assert f"Please submit at most {QUIZ_MAX_QUESTIONS} forms." in refused.content.decode()
    assert not page.questions.exists()
    assert client.post(url, with_questions(QUIZ_MAX_QUESTIONS)).status_code == 302
    assert page.questions.count() == QUIZ_MAX_QUESTIONS

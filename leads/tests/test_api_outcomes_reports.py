"""Partner API: buyer outcomes and returns, advertiser postbacks, reports, the OpenAPI schema and a
schemathesis run over it."""

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

from campaigns.models import TrafficSource
from campaigns.services import advertiser_postback_token_rotate
from campaigns.tests.factories import (
    AdvertiserFactory,
    CampaignFactory,
    ClickFactory,
    DailyStatFactory,
    OfferFactory,
)
from leadcrm.wsgi import application
from leads.models import ApiScope, Lead, LeadEvent, LeadOutcome, Partner
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory, delivered
from reporting import selectors

pytestmark = pytest.mark.django_db

MONEY_KEYS = {"currency", "spend", "revenue", "cpl", "cost_per_qualified", "roi", "roas", "epc"}
TRAFFIC_KEYS = {"impressions", "clicks", "tracked_clicks"}
COUNT_KEYS = {
    "leads",
    "valid_leads",
    "duplicates",
    "suspect",
    "invalid",
    "qualified",
    "hard_leads",
    "soft_leads",
    "converted",
    "returned",
    "conversion_rate",
    "validity_rate",
}


def api_client(partner: Partner, scopes: list[str]) -> APIClient:
    _, raw_key = api_key_create(partner=partner, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def outcome_url(lead: Lead) -> str:
    return reverse("api-lead-outcome", args=[lead.public_id])


def revenue_and_counts(lead: Lead) -> tuple[Decimal, int, int]:
    """Revenue, converted and returned of the lead's campaign on the day it was captured, as staff see it."""
    day = timezone.localdate(lead.created_at)
    (row,) = selectors.report(date_from=day, date_to=day, group_by=["campaign"])
    return row["revenue"], row["converted"], row["returned"]


# --- Outcomes ---------------------------------------------------------------------------------


@pytest.fixture
def offer(db):
    return OfferFactory(return_window_days=7, currency="USD")


@pytest.fixture
def buyer(offer):
    return Partner.objects.create(name="Solar Buyer", role=Partner.Role.BUYER, advertiser=offer.advertiser)


@pytest.fixture
def buyer_client(buyer):
    return api_client(buyer, [ApiScope.OUTCOMES_WRITE])


@pytest.fixture
def lead(offer):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - timedelta(days=2))
    delivered(lead)  # sold to the buyer: the only leads it may report on
    return lead


def test_buyer_reports_contacted_and_the_new_lead_becomes_contacted(buyer_client, buyer, lead):
    response = buyer_client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["lead"]["id"], body["lead"]["status"]) == (
        "contacted",
        str(lead.public_id),
        "contacted",
    )
    lead.refresh_from_db()
    assert lead.status == "contacted" and lead.first_contacted_at is not None
    assert list(LeadOutcome.objects.values_list("lead", "partner", "kind")) == [(lead.pk, buyer.pk, "contacted")]


def test_buyer_reports_a_sale_and_the_lead_is_won_with_its_amount_counted_as_revenue(buyer_client, lead):
    response = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "1250.00", "currency": "eur", "external_reference": "sale-1"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["sale_amount"], body["currency"], body["external_reference"]) == (
        "converted",
        "1250.00",
        "EUR",
        "sale-1",
    )
    assert body["lead"]["status"] == "won"
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("1250.00"), "EUR")
    assert lead.converted_at is not None
    # The offer is paid in USD: a sale in EUR is shown apart, never added to USD revenue.
    assert revenue_and_counts(lead) == (Decimal("0.00"), 1, 0)
    (row,) = selectors.report(date_from=lead.created_at.date(), date_to=lead.created_at.date(), group_by=["campaign"])
    assert (row["currency"], row["money_other_currencies"]) == ("USD", {"EUR": Decimal("1250.00")})


@pytest.mark.parametrize("age", [timedelta(hours=1), timedelta(days=7) - timedelta(minutes=5)])
def test_return_within_the_window_marks_the_lead_returned_and_reverses_its_revenue(buyer_client, offer, age):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - age)
    delivered(lead)
    sale = {"outcome": "converted", "sale_amount": "300.00", "external_reference": "sale-7"}
    assert buyer_client.post(outcome_url(lead), sale, format="json").status_code == 201
    assert revenue_and_counts(lead) == (Decimal("300.00"), 1, 0)

    response = buyer_client.post(
        outcome_url(lead),
        {"outcome": "returned", "reason": "not_interested", "note": "never asked", "external_reference": "return-7"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["reason"], response.json()["lead"]["status"]) == ("not_interested", "returned")
    lead.refresh_from_db()
    assert lead.status == "returned" and lead.returned_at is not None
    assert lead.status_reason == "not_interested: never asked"
    assert revenue_and_counts(lead) == (Decimal("0.00"), 0, 1)
    assert list(lead.outcomes.order_by("created_at").values_list("kind", flat=True)) == ["converted", "returned"]


@pytest.mark.parametrize("age", [timedelta(days=7, minutes=5), timedelta(days=40)])
def test_return_after_the_window_is_refused_with_the_window_named_and_nothing_changes(buyer_client, offer, age):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - age, status="won", sale_amount=Decimal("80"))
    delivered(lead)

    response = buyer_client.post(outcome_url(lead), {"outcome": "returned", "reason": "fraud"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "return window of this offer (7 days) ended on" in error["message"]
    assert error["fields"] == {"reason": ["Outside the return window."]}
    lead.refresh_from_db()
    assert (lead.status, lead.returned_at, lead.sale_amount) == ("won", None, Decimal("80.00"))
    assert not LeadOutcome.objects.exists()
    assert not lead.events.exists()


def test_the_same_external_reference_again_returns_the_first_outcome_and_stores_nothing_new(buyer_client, lead):
    first = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "99.90", "external_reference": "crm-42"},
        format="json",
    )
    again = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "5000.00", "external_reference": "crm-42"},
        format="json",
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["sale_amount"] == "99.90"
    assert LeadOutcome.objects.count() == 1
    assert lead.events.filter(kind=LeadEvent.Kind.OUTCOME).count() == 1
    lead.refresh_from_db()
    assert lead.sale_amount == Decimal("99.90")


@pytest.mark.parametrize("same_lead", [True, False], ids=["other-outcome-same-lead", "same-outcome-other-lead"])
def test_the_same_reference_for_a_different_outcome_is_a_conflict(buyer_client, offer, lead, same_lead):
    first = buyer_client.post(outcome_url(lead), {"outcome": "contacted", "external_reference": "ref-1"}, format="json")
    assert first.status_code == 201
    other_lead = lead if same_lead else LeadFactory(campaign__offer=offer)
    if not same_lead:
        delivered(other_lead)
    body = (
        {"outcome": "converted", "sale_amount": "10.00", "external_reference": "ref-1"}
        if same_lead
        else {"outcome": "contacted", "external_reference": "ref-1"}
    )

    response = buyer_client.post(outcome_url(other_lead), body, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "ref-1" in response.json()["error"]["message"]
    assert LeadOutcome.objects.count() == 1
    other_lead.refresh_from_db()
    assert other_lead.status == ("contacted" if same_lead else "new")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"outcome": "converted"}, "sale_amount"),
        ({"outcome": "converted", "sale_amount": "0.00"}, "sale_amount"),
        ({"outcome": "converted", "sale_amount": "-5"}, "sale_amount"),
        ({"outcome": "returned"}, "reason"),
        ({"outcome": "returned", "reason": "changed my mind"}, "reason"),
        ({"outcome": "won"}, "outcome"),
        ({"outcome": "converted", "sale_amount": "10", "currency": "EURO"}, "currency"),
        ({"outcome": "converted", "sale_amount": "10", "currency": "ZZZ"}, "currency"),
    ],
)
def test_an_outcome_without_what_it_needs_is_400_and_changes_nothing(buyer_client, lead, body, field):
    response = buyer_client.post(outcome_url(lead), body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


def test_a_supplier_only_partner_gets_404_even_for_a_lead_it_sent(offer):
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    lead = LeadFactory(campaign__offer=offer, partner=supplier)
    client = api_client(supplier, [ApiScope.OUTCOMES_WRITE, ApiScope.LEADS_READ])
    assert client.get(reverse("api-lead", args=[lead.public_id])).status_code == 200  # it can see the lead

    response = client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize(
    "lead_kwargs",
    [
        {"campaign__offer__name": "Another advertiser's offer"},
        {"validity": "invalid"},
        {"is_duplicate": True},
        {"is_test": True},
        {"delivery": "rejected"},
        {"delivery": None},
    ],
    ids=["other-advertiser", "invalid", "duplicate", "test", "rejected-by-buyer", "not-delivered"],
)
def test_a_buyer_gets_404_for_leads_it_was_not_sold(buyer_client, offer, lead_kwargs):
    delivery = lead_kwargs.pop("delivery", None)
    other_advertiser = "campaign__offer__name" in lead_kwargs
    if not other_advertiser:
        lead_kwargs = {**lead_kwargs, "campaign__offer": offer}
    lead = LeadFactory(**lead_kwargs)
    if other_advertiser:
        delivered(lead)  # sold, but to its own advertiser, not to this buyer's
    elif delivery:
        delivered(lead, status=delivery)

    response = buyer_client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 404
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


# --- Advertiser postback in -------------------------------------------------------------------


@pytest.fixture
def postback_token(offer):
    return advertiser_postback_token_rotate(advertiser=offer.advertiser)


def test_a_sale_postback_by_click_id_wins_the_lead_with_the_payout_as_sale_amount(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-1")

    response = client.get(
        "/postback/", {"token": postback_token, "click_id": "clk-1", "status": "sale", "payout": "42.50"}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["sale_amount"], body["lead"]["status"]) == ("converted", "42.50", "won")
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("42.50"), "USD")
    assert revenue_and_counts(lead) == (Decimal("42.50"), 1, 0)


def test_a_lead_postback_by_lead_id_is_recorded_as_accepted_and_leaves_the_status(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer)

    response = client.post(
        "/postback/",
        {"token": postback_token, "lead_id": str(lead.public_id), "status": "lead", "payout": "20"},
        content_type="application/json",
    )

    assert response.status_code == 201, response.json()
    assert list(LeadOutcome.objects.values_list("lead", "partner", "kind", "sale_amount")) == [
        (lead.pk, None, "accepted", Decimal("20.00"))
    ]
    lead.refresh_from_db()
    assert lead.status == "new"


def test_a_return_postback_within_the_window_returns_the_lead(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-r", created_at=timezone.now() - timedelta(days=1))

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-r", "status": "return"})

    assert response.status_code == 201, response.json()
    assert (response.json()["outcome"], response.json()["lead"]["status"]) == ("returned", "returned")
    lead.refresh_from_db()
    assert lead.status == "returned" and lead.returned_at is not None


def test_a_return_postback_after_the_window_is_refused(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-r", created_at=timezone.now() - timedelta(days=8))

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-r", "status": "return"})

    assert response.status_code == 400
    assert "(7 days)" in response.json()["error"]["message"]
    lead.refresh_from_db()
    assert (lead.status, lead.returned_at) == ("new", None)
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize("which", ["unknown", "rotated-away"])
def test_a_postback_with_an_unknown_or_rotated_token_is_401(client, offer, postback_token, which):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-1")
    advertiser_postback_token_rotate(advertiser=offer.advertiser)  # the fixture's token stops working
    token = "not-a-token" if which == "unknown" else postback_token

    response = client.get("/postback/", {"token": token, "click_id": "clk-1", "status": "sale", "payout": "1"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize("owner", ["nobody", "other-advertiser", "test-lead"])
def test_a_postback_for_a_click_id_not_among_the_advertisers_leads_is_404(client, offer, postback_token, owner):
    if owner == "other-advertiser":
        LeadFactory(click_id="clk-x")
    elif owner == "test-lead":
        LeadFactory(campaign__offer=offer, click_id="clk-x", is_test=True)

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-x", "status": "sale", "payout": "9"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not LeadOutcome.objects.exists()


def test_a_postback_without_click_id_or_lead_id_is_400(client, postback_token):
    response = client.get("/postback/", {"token": postback_token, "status": "sale", "payout": "9"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"non_field_errors": ["Give click_id or lead_id."]}


@pytest.mark.parametrize("reference", ["order-77", "r" * 200], ids=["short", "200-characters"])
def test_the_same_postback_reference_twice_records_one_outcome(client, offer, postback_token, reference):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-2")
    params = {"token": postback_token, "click_id": "clk-2", "status": "sale", "payout": "30", "reference": reference}

    first = client.get("/postback/", params)
    again = client.get("/postback/", {**params, "payout": "31"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert LeadOutcome.objects.filter(lead=lead).count() == 1
    lead.refresh_from_db()
    assert lead.sale_amount == Decimal("30.00")


# --- Reports ----------------------------------------------------------------------------------

DAY_0, DAY_1, DAY_2, DAY_3 = date(2025, 3, 9), date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.get_current_timezone())


@pytest.fixture
def report_data(db):
    """Two campaigns with leads (push and native), one push campaign with spend and a click but no leads,
    one native campaign with zero spend. The report covers DAY_1 and DAY_2; DAY_0 and DAY_3 lie outside it."""
    # A long return window: the returned lead's sale (booked today for a day of 2025) is still reversed.
    solar = CampaignFactory(
        slug="solar-push", name="Solar", traffic_source__kind=TrafficSource.Kind.PUSH, offer__return_window_days=10_000
    )
    roofing = CampaignFactory(slug="roofing-native", name="Roofing", traffic_source__kind=TrafficSource.Kind.NATIVE)
    idle = CampaignFactory(slug="idle-push", name="Idle", traffic_source__kind=TrafficSource.Kind.PUSH)
    free = CampaignFactory(slug="free-native", name="Free", traffic_source__kind=TrafficSource.Kind.NATIVE)
    for campaign, day, impressions, clicks, spend in [
        (solar, DAY_1, 1000, 100, "30.00"),
        (solar, DAY_2, 500, 50, "20.00"),
        (roofing, DAY_1, 2000, 80, "40.00"),
        (idle, DAY_2, 300, 0, "10.00"),
        (free, DAY_2, 0, 0, "0.00"),
        (solar, DAY_0, 9999, 999, "999.00"),
        (roofing, DAY_3, 9999, 999, "999.00"),
    ]:
        DailyStatFactory(campaign=campaign, date=day, impressions=impressions, clicks=clicks, spend=Decimal(spend))
    # Tracked clicks: solar 3 + 1, roofing 2, idle 1; and two outside the dates.
    for campaign, day, country, device, number in [
        (solar, DAY_1, "US", "mobile", 3),
        (solar, DAY_2, "DE", "desktop", 1),
        (roofing, DAY_1, "US", "mobile", 2),
        (idle, DAY_2, "US", "desktop", 1),
        (solar, DAY_0, "US", "mobile", 1),
        (roofing, DAY_3, "US", "mobile", 1),
    ]:
        ClickFactory.create_batch(
            number, campaign=campaign, created_at=at_noon(day), country=country, device_type=device
        )
    supplier = Partner.objects.create(name="Affiliate A", role=Partner.Role.SUPPLIER)
    other_supplier = Partner.objects.create(name="Affiliate B", role=Partner.Role.SUPPLIER)

    def lead(campaign, day, country, device, partner=other_supplier, **fields):
        return LeadFactory(
            campaign=campaign, created_at=at_noon(day), country=country, device_type=device, partner=partner, **fields
        )

    # Every lead is hard unless said otherwise (the factory's default).
    won = {"status": "won", "sale_amount": Decimal("100.00")}
    first = lead(solar, DAY_1, "US", "mobile", partner=supplier, **won)
    lead(solar, DAY_1, "US", "desktop", status="returned", sale_amount=Decimal("50.00"))
    lead(solar, DAY_1, "DE", "mobile", partner=supplier, validity="invalid", qualification="disqualified")
    # A duplicate that is also invalid counts as a duplicate only.
    lead(solar, DAY_2, "US", "mobile", is_duplicate=True, duplicate_of=first, validity="invalid")
    lead(solar, DAY_2, "DE", "desktop", qualification="disqualified", status="won", sale_amount=Decimal("60.00"))
    lead(roofing, DAY_1, "US", "mobile", partner=supplier, status="won", sale_amount=Decimal("200.00"))
    lead(roofing, DAY_1, "US", "mobile", validity="suspect")
    lead(roofing, DAY_2, "DE", "desktop", status="contacted", lead_type="soft")
    # Never counted: sandbox leads, and leads outside the dates.
    lead(solar, DAY_1, "US", "mobile", partner=supplier, is_test=True, status="won", sale_amount=Decimal("1000"))
    lead(roofing, DAY_2, "DE", "desktop", is_test=True, validity="invalid", is_duplicate=True)
    lead(solar, DAY_0, "US", "mobile", partner=supplier, **{**won, "sale_amount": Decimal("500.00")})
    lead(roofing, DAY_3, "US", "mobile", partner=supplier, **won)
    return SimpleNamespace(supplier=supplier, solar=solar, roofing=roofing, idle=idle, free=free)


@pytest.fixture
def staff_client(superuser):
    client = APIClient()
    client.force_login(superuser)
    return client


def report(client, group_by: str, date_from: date = DAY_1, date_to: date = DAY_2):
    response = client.get(reverse("api-reports"), {"date_from": date_from, "date_to": date_to, "group_by": group_by})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["date_from"], body["date_to"]) == (str(date_from), str(date_to))
    assert body["group_by"] == group_by.split(",")
    return body["rows"]


def campaign_columns(campaign) -> dict:
    return {"campaign": campaign.slug, "campaign_name": campaign.name, "campaign_id": campaign.id}


def counts(
    leads,
    valid,
    duplicates,
    suspect,
    invalid,
    qualified,
    hard,
    soft,
    converted,
    returned,
    conversion_rate,
    validity_rate,
):
    return {
        "leads": leads,
        "valid_leads": valid,
        "duplicates": duplicates,
        "suspect": suspect,
        "invalid": invalid,
        "qualified": qualified,
        "hard_leads": hard,
        "soft_leads": soft,
        "converted": converted,
        "returned": returned,
        "conversion_rate": conversion_rate,
        "validity_rate": validity_rate,
    }


def money(impressions, clicks, tracked_clicks, spend, revenue, cpl, cost_per_qualified, roi, roas, epc):
    """Staff money of rows whose revenue is all sale commissions and whose cost all media spend."""

    def four_places(value):
        return None if value is None else f"{Decimal(value):.4f}"

    return {
        "currency": "USD",
        "impressions": impressions,
        "clicks": clicks,
        "tracked_clicks": tracked_clicks,
        "lead_revenue": "0.00",
        "sold_leads": 0,
        "average_sale_price": None,
        "sale_revenue": revenue,
        "revenue": revenue,
        "media_spend": four_places(spend),
        "supplier_cost": "0.0000",
        "cost": four_places(spend),
        "margin": None if spend is None else four_places(Decimal(revenue) - Decimal(spend)),
        "cpl": cpl,
        "cost_per_qualified": cost_per_qualified,
        "roi": roi,
        "roas": roas,
        "epc": epc,
    }


# Hand-computed from report_data. valid = valid and not a duplicate; suspect and invalid leave the
# duplicates out, so leads = valid + duplicates + suspect + invalid; qualified, hard, soft and converted
# count only valid leads; conversion rate = converted / valid; validity rate = valid / leads; CPL =
# spend / valid; cost per qualified = spend / qualified; ROI = (revenue - spend) / spend; ROAS =
# revenue / spend; EPC = revenue / clicks (the tracked clicks where the source's are unknown).
# counts(leads, valid, duplicates, suspect, invalid, qualified, hard, soft, converted, returned, conversion, validity)
# money(impressions, clicks, tracked clicks, spend, revenue, CPL, cost per qualified, ROI, ROAS, EPC)
SOLAR = {
    # 5 leads: won 100 (valid), returned (valid), invalid, duplicate, won 60 (valid, disqualified), all hard;
    # 1500 impressions, 150 clicks, 3 + 1 tracked, 50.00 spent: CPL 50 / 3, per qualified 50 / 2
    **counts(5, 3, 1, 0, 1, 2, 3, 0, 2, 1, "0.6667", "0.6000"),
    **money(1500, 150, 4, "50.00", "160.00", "16.67", "25.00", "2.2000", "3.2000", "1.0667"),
}
ROOFING = {
    # 3 leads: won 200 (valid, hard), suspect, contacted (valid, soft); 2000 impressions, 80 clicks, 2 tracked,
    # 40.00 spent
    **counts(3, 2, 0, 1, 0, 2, 1, 1, 1, 0, "0.5000", "0.6667"),
    **money(2000, 80, 2, "40.00", "200.00", "20.00", "20.00", "4.0000", "5.0000", "2.5000"),
}
NO_LEADS = counts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None)


def test_report_by_campaign_matches_hand_computed_figures(report_data, staff_client):
    assert report(staff_client, "campaign") == [
        # zero spend and no leads or clicks: nothing to divide by
        {
            **campaign_columns(report_data.free),
            **NO_LEADS,
            **money(0, 0, 0, "0.00", "0.00", None, None, None, None, None),
        },
        # spend without leads: no CPL or rates; ROI -100 %; ROAS 0; the source reported 0 clicks, so
        # EPC = 0 revenue / its 1 tracked click
        {
            **campaign_columns(report_data.idle),
            **NO_LEADS,
            **money(300, 0, 1, "10.00", "0.00", None, None, "-1.0000", "0.0000", "0.0000"),
        },
        {**campaign_columns(report_data.roofing), **ROOFING},
        {**campaign_columns(report_data.solar), **SOLAR},
    ]


def test_report_by_traffic_source_kind_adds_up_the_campaigns_of_each_kind(report_data, staff_client):
    assert report(staff_client, "traffic_source_kind") == [
        # roofing + free: the zero spend adds nothing
        {"traffic_source_kind": "native", **ROOFING},
        # solar + idle: 1800 impressions, 150 clicks, 4 + 1 tracked, 60.00 spent, revenue 160
        {
            "traffic_source_kind": "push",
            **counts(5, 3, 1, 0, 1, 2, 3, 0, 2, 1, "0.6667", "0.6000"),
            **money(1800, 150, 5, "60.00", "160.00", "20.00", "30.00", "1.6667", "2.6667", "1.0667"),
        },
    ]


def test_report_by_day_matches_hand_computed_figures(report_data, staff_client):
    assert report(staff_client, "day") == [
        # DAY_1: solar won 100, returned, invalid; roofing won 200, suspect; 30 + 40 spent, 100 + 80 clicks,
        # 3 + 2 tracked
        {
            "day": "2025-03-10",
            **counts(5, 3, 0, 1, 1, 3, 3, 0, 2, 1, "0.6667", "0.6000"),
            **money(3000, 180, 5, "70.00", "300.00", "23.33", "23.33", "3.2857", "4.2857", "1.6667"),
        },
        # DAY_2: solar duplicate (invalid too), won 60 (disqualified, hard); roofing contacted (soft);
        # 20 + 10 + 0 spent, 50 clicks, 1 + 1 tracked
        {
            "day": "2025-03-11",
            **counts(3, 2, 1, 0, 0, 1, 1, 1, 1, 0, "0.5000", "0.6667"),
            **money(800, 50, 2, "30.00", "60.00", "15.00", "30.00", "1.0000", "2.0000", "1.2000"),
        },
    ]


def test_report_by_country_and_device_has_revenue_and_tracked_clicks_but_no_spend(report_data, staff_client):
    no_spend = {
        "currency": "USD",
        "impressions": None,
        "clicks": None,
        "media_spend": None,
        "cost": None,
        "margin": None,
        "supplier_cost": "0.0000",
        "lead_revenue": "0.00",
        "sold_leads": 0,
        "average_sale_price": None,
        "cpl": None,
        "cost_per_qualified": None,
        "roi": None,
        "roas": None,
    }
    assert report(staff_client, "country,device_type") == [
        # solar won 60 (disqualified, hard), roofing contacted (soft); 1 tracked click: EPC 60 / 1
        {
            "country": "DE",
            "device_type": "desktop",
            **counts(2, 2, 0, 0, 0, 1, 1, 1, 1, 0, "0.5000", "1.0000"),
            **no_spend,
            "tracked_clicks": 1,
            "revenue": "60.00",
            "sale_revenue": "60.00",
            "epc": "60.0000",
        },
        # solar invalid; no click
        {
            "country": "DE",
            "device_type": "mobile",
            **counts(1, 0, 0, 0, 1, 0, 0, 0, 0, 0, None, "0.0000"),
            **no_spend,
            "tracked_clicks": 0,
            "revenue": "0.00",
            "sale_revenue": "0.00",
            "epc": None,
        },
        # solar returned: its 50.00 sale no longer counts; idle's click
        {
            "country": "US",
            "device_type": "desktop",
            **counts(1, 1, 0, 0, 0, 1, 1, 0, 0, 1, "0.0000", "1.0000"),
            **no_spend,
            "tracked_clicks": 1,
            "revenue": "0.00",
            "sale_revenue": "0.00",
            "epc": "0.0000",
        },
        # solar won 100 and its duplicate, roofing won 200 and the suspect one; 3 + 2 tracked: EPC 300 / 5
        {
            "country": "US",
            "device_type": "mobile",
            **counts(4, 2, 1, 1, 0, 2, 2, 0, 2, 0, "1.0000", "0.5000"),
            **no_spend,
            "tracked_clicks": 5,
            "revenue": "300.00",
            "sale_revenue": "300.00",
            "epc": "60.0000",
        },
    ]


def test_a_supplier_sees_counts_of_its_own_leads_only_and_no_money(report_data):
    client = api_client(report_data.supplier, [ApiScope.REPORTS_READ])

    rows = report(client, "campaign")

    assert rows == [
        # roofing won 200
        {**campaign_columns(report_data.roofing), **counts(1, 1, 0, 0, 0, 1, 1, 0, 1, 0, "1.0000", "1.0000")},
        # solar won 100, invalid
        {**campaign_columns(report_data.solar), **counts(2, 1, 0, 0, 1, 1, 1, 0, 1, 0, "1.0000", "0.5000")},
    ]
    keys = {key for row in rows for key in row}
    assert keys == {"campaign", "campaign_name", "campaign_id", *COUNT_KEYS}
    assert not keys & (MONEY_KEYS | TRAFFIC_KEYS)


@pytest.mark.parametrize(
    "group_by", ["advertiser", "campaign,advertiser", "traffic_source", "zone", "campaign,placement", "landing_page"]
)
def test_a_supplier_may_not_group_by_buyers_sources_placements_or_pages(report_data, staff_client, group_by):
    client = api_client(report_data.supplier, [ApiScope.REPORTS_READ])

    response = client.get(reverse("api-reports"), {"date_from": DAY_1, "date_to": DAY_2, "group_by": group_by})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and "group_by" in response.json()["error"]["fields"]
    assert report(staff_client, group_by)  # staff may


def test_staff_who_see_only_their_own_leads_get_no_spend_beside_them(report_data, staff_user_in):
    # Spend is for every lead of a campaign; beside a rep's share of the leads it would read as their CPL.
    user = staff_user_in("Sales")
    user.user_permissions.add(Permission.objects.get(codename="view_dailystat"))
    LeadFactory(campaign=report_data.solar, created_at=at_noon(DAY_1), assigned_to=user)
    client = APIClient()
    client.force_login(user)

    rows = report(client, "campaign")

    assert {key for row in rows for key in row} == {"campaign", "campaign_name", "campaign_id", *COUNT_KEYS}


def test_a_supplier_without_the_reports_scope_is_403(report_data):
    client = api_client(report_data.supplier, [ApiScope.LEADS_READ])

    response = client.get(reverse("api-reports"), {"date_from": DAY_1, "date_to": DAY_2})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    "query, field",
    [
        ({"date_from": "2025-03-11", "date_to": "2025-03-10"}, "date_to"),
        ({"date_from": "2025-03-10", "date_to": "2025-03-11", "group_by": "campaign,weather"}, "group_by"),
        ({"date_from": "2025-03-10", "date_to": "2025-03-11", "group_by": " , "}, "group_by"),
        ({"date_to": "2025-03-11"}, "date_from"),
        ({"date_from": "10/03/2025", "date_to": "2025-03-11"}, "date_from"),
        ({"date_from": "2024-01-01", "date_to": "2025-03-11"}, "date_to"),
        ({"date_from": "9999-12-01", "date_to": "9999-12-31"}, "date_from"),
        ({"date_from": "1999-12-31", "date_to": "2000-01-02"}, "date_from"),
    ],
    ids=[
        "date_to-before-date_from",
        "unknown-group",
        "empty-group",
        "no-date_from",
        "bad-date",
        "over-366-days",
        "year-9999",
        "before-2000",
    ],
)
def test_a_bad_report_query_is_400_in_the_error_shape(staff_client, query, field):
    response = staff_client.get(reverse("api-reports"), query)

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == "invalid" and field in body["error"]["fields"]


def test_a_report_costs_the_same_queries_whatever_the_number_of_rows(
    staff_client, report_data, django_assert_max_num_queries
):
    # session, user, leads aggregate, sales in other currencies, daily stats aggregate, tracked clicks aggregate
    with django_assert_max_num_queries(6) as few:
        few_rows = report(staff_client, "campaign,day")
    for number in range(6):
        campaign = CampaignFactory(slug=f"extra-{number}")
        DailyStatFactory(campaign=campaign, date=DAY_1, spend=Decimal("1.00"))
        ClickFactory(campaign=campaign, created_at=at_noon(DAY_1))
        LeadFactory.create_batch(2, campaign=campaign, created_at=at_noon(DAY_2))

    with django_assert_max_num_queries(6) as many:
        many_rows = report(staff_client, "campaign,day")

    assert len(many_rows) == len(few_rows) + 12
    assert len(many) == len(few)


# --- OpenAPI ----------------------------------------------------------------------------------


def test_the_schema_generates_and_validates_without_warnings(tmp_path):
    schema_file = tmp_path / "openapi.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))

    text = schema_file.read_text()
    assert "/api/v1/leads/{lead_id}/outcome/:" in text and "/api/v1/reports/:" in text and "/postback/:" in text


def test_staff_can_read_the_schema_and_the_swagger_ui_served_from_local_files(staff_client):
    schema = staff_client.get(reverse("api-schema"), {"format": "json"})
    docs = staff_client.get(reverse("api-docs"))

    assert schema.status_code == 200
    assert "/api/v1/reports/" in schema.json()["paths"]
    assert "ApiKey" in schema.json()["components"]["securitySchemes"]
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    assert [asset for asset in assets if not asset.startswith("/static/")] == []
    assert not re.search(r"https?://|cdn|unpkg|jsdelivr", html)


# --- Schemathesis -----------------------------------------------------------------------------


@pytest.fixture
def wsgi_app():
    # As Django's test client does: the end of a request must not close the connection that holds
    # the test's transaction (close_old_connections drops a connection left outside autocommit).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


@pytest.fixture
def fuzz_partner(offer):
    """A supplier and buyer with every scope, one campaign to post to and a lead it bought."""
    partner = Partner.objects.create(
        name="Full partner", role=Partner.Role.BOTH, advertiser=offer.advertiser, rate_limit_per_minute=1_000_000
    )
    campaign = CampaignFactory(offer=offer, slug="fuzz-campaign")
    partner.campaigns.add(campaign)
    LeadFactory(campaign=campaign, partner=partner)
    bought = LeadFactory(campaign=campaign, created_at=timezone.now() - timedelta(hours=1))
    _, raw_key = api_key_create(partner=partner, scopes=list(ApiScope.values))
    return SimpleNamespace(raw_key=raw_key, campaign=campaign.slug, lead_id=str(bought.public_id))


def aim_at_real_objects(case, fuzz_partner) -> None:
    """Random UUIDs and slugs only reach the 404 and unknown-campaign paths: use the partner's own, so
    the cases get through to the pipeline and the outcome service. Other fields stay as generated."""
    if "lead_id" in (case.path_parameters or {}):
        case.path_parameters["lead_id"] = fuzz_partner.lead_id
    if case.method == "POST" and case.path in ("/api/v1/leads/", "/api/v1/leads/batch/"):
        body = case.body if isinstance(case.body, dict) else {}
        items = [body, *(body.get("leads") if isinstance(body.get("leads"), list) else [])]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("campaign"), str):
                item["campaign"] = fuzz_partner.campaign


fuzzed_schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/v1/")


@fuzzed_schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    database=None,  # no example files in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_api_v1_operation_answers_with_a_server_error(case, fuzz_partner):
    aim_at_real_objects(case, fuzz_partner)

    # Each case in a savepoint: on PostgreSQL a failed query would abort the test's transaction and
    # every later case would fail for that reason, hiding the case that broke it.
    with transaction.atomic():
        response = case.call(headers={"Authorization": f"Api-Key {fuzz_partner.raw_key}"})
        transaction.set_rollback(response.status_code >= 500)

    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}\n"
        f"query={case.query!r} body={case.body!r}\n{response.text[:1000]}"
    )


def test_postback_accepts_form_fields(client):
    advertiser = AdvertiserFactory(name="Form poster")
    token = advertiser_postback_token_rotate(advertiser=advertiser)
    lead = LeadFactory(campaign__offer__advertiser=advertiser, click_id="form-click")

    body = urlencode({"token": token, "click_id": "form-click", "status": "sale", "payout": "99.50"})
    response = client.post("/postback/", body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 201
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount) == ("won", Decimal("99.50"))


def test_postback_with_a_bad_token_is_refused_before_its_fields_are_checked(client):
    response = client.get("/postback/", {"token": "guess", "status": "nonsense"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["fields"] == {}


def test_report_by_offer_keeps_same_named_offers_of_different_advertisers_apart():
    first = CampaignFactory(offer__name="Solar quote")
    second = CampaignFactory(offer__name="Solar quote")
    LeadFactory(campaign=first)
    LeadFactory(campaign=second)
    LeadFactory(campaign=second)
    today = timezone.localdate()

    rows = selectors.report(date_from=today, date_to=today, group_by=["offer"])

    assert sorted((row["offer"], row["offer_id"], row["leads"]) for row in rows) == sorted(
        [("Solar quote", first.offer_id, 1), ("Solar quote", second.offer_id, 2)]
    )


def test_converted_counts_valid_leads_so_the_conversion_rate_stays_a_rate():
    campaign = CampaignFactory()
    LeadFactory(campaign=campaign, status="won", sale_amount=Decimal("100"))
    LeadFactory(campaign=campaign, status="won", sale_amount=Decimal("50"), validity="suspect")
    today = timezone.localdate()

    (row,) = selectors.report(date_from=today, date_to=today, group_by=["campaign"])

    assert (row["valid_leads"], row["converted"], row["conversion_rate"]) == (1, 1, Decimal("1.0000"))
    assert row["revenue"] == Decimal("150.00")  # revenue counts every sale


def test_postback_token_may_come_in_a_header_instead_of_the_url(client):
    advertiser = AdvertiserFactory(name="Header poster")
    token = advertiser_postback_token_rotate(advertiser=advertiser)
    lead = LeadFactory(campaign__offer__advertiser=advertiser, click_id="hdr-click")

    response = client.get(
        "/postback/", {"click_id": "hdr-click", "status": "sale", "payout": "12"}, HTTP_X_POSTBACK_TOKEN=token
    )

    assert response.status_code == 201
    lead.refresh_from_db()
    assert lead.status == "won"


def test_postbacks_from_one_address_are_rate_limited_and_other_addresses_are_not(client, offer, settings):
    settings.POSTBACK_REQUESTS_PER_MINUTE = 3
    from django.core.cache import cache

    cache.clear()
    guess = {"token": "wrong-token", "click_id": "clk-1", "status": "sale"}

    answers = [client.get("/postback/", guess, REMOTE_ADDR="198.51.100.9").status_code for _ in range(4)]
    other = client.get("/postback/", guess, REMOTE_ADDR="198.51.100.10")

    assert answers == [401, 401, 401, 429]  # token guessing is slowed down
    assert int(client.get("/postback/", guess, REMOTE_ADDR="198.51.100.9")["Retry-After"]) > 0
    assert other.status_code == 401

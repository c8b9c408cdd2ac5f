"""The report API: hand-computed figures per grouping, partners' scope, errors and query cost."""

from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import TrafficSource
from campaigns.tests.factories import (
    CampaignFactory,
    ClickFactory,
    DailyStatFactory,
)
from leads.models import ApiScope, Partner
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory
from reporting import selectors

pytestmark = pytest.mark.django_db

MONEY_KEYS = {
    "currency",
    "lead_revenue",
    "sold_leads",
    "average_sale_price",
    "sale_revenue",
    "revenue",
    "media_spend",
    "supplier_cost",
    "cost",
    "margin",
    "money_other_currencies",
    "cpl",
    "cost_per_qualified",
    "roi",
    "roas",
    "epc",
}
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

    assert response.status_code == 403  # a well-formed request for what only staff may see
    assert response.json()["error"]["code"] == "permission_denied"
    assert "Partners may group by campaign" in response.json()["error"]["message"]
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

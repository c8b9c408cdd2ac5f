"""A small lead business computed by hand: leads sold at route prices (one returned inside the window,
one after it), a sale commission, a supplier's payouts and their reversal, media spend, two currencies.
The same P&L must come out of the selector, the API, the report CSV and the dashboard."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory, DailyStatFactory, OfferFactory
from leads.models import DeliveryDestination, DeliveryRoute, OutboxEntry, Partner, RoutePrice, SupplierPayout
from leads.services import lead_set_status
from leads.services.delivery import delivery_outbox_handler
from leads.tests.factories import LeadFactory
from reporting.selectors import report

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAY = TODAY - datetime.timedelta(days=2)  # inside a 7-day window and the dashboard's 7 days
OLD_DAY = TODAY - datetime.timedelta(days=9)  # past the 7-day return window


def at_noon(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=timezone.get_current_timezone())


def sold(lead) -> None:
    """Deliver the lead through the outbox handler to its buyer's inbox (a real send, to the test mailbox)."""
    delivery_outbox_handler(OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY))
    assert lead.deliveries.get().status == "accepted"


def buyer_route(offer, price: str) -> DeliveryRoute:
    inbox = DeliveryDestination.objects.create(
        advertiser=offer.advertiser, name="Inbox", kind="email", email_to=["buyer@example.com"]
    )
    return DeliveryRoute.objects.create(offer=offer, destination=inbox, price_per_lead=Decimal(price))


@pytest.fixture
def business(db):
    """Solar (USD): route price 30.00, 40.00 for US leads; the supplier earns 10.00 per sold lead.
      L1 US sold 40 (supplier)         L2 CA sold 30, returned in the window (supplier)
      L3 US sold 40 (supplier), won with a 100.00 commission   L4 invalid, never sold
      L5 CA sold 30 on OLD_DAY, returned after the window (no refund)
      Spend on DAY: 45.00, 100 clicks.
    Roof (EUR): route price 50.00; L6, L7 sold. Spend on DAY: 20.00, 40 clicks.
    """
    terms = {"payout_per_lead": Decimal("20.00"), "payout_per_sale": Decimal("0"), "return_window_days": 7}
    solar_offer = OfferFactory(name="Solar", currency="USD", **terms)
    roof_offer = OfferFactory(name="Roof", currency="EUR", **terms)
    solar = CampaignFactory(name="Solar A", slug="solar-a", offer=solar_offer)
    roof = CampaignFactory(name="Roof B", slug="roof-b", offer=roof_offer)
    RoutePrice.objects.create(route=buyer_route(solar_offer, "30.00"), country="US", price=Decimal("40.00"))
    buyer_route(roof_offer, "50.00")
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    SupplierPayout.objects.create(partner=supplier, campaign=solar, amount=Decimal("10.00"), basis="sold")

    def lead(campaign, country, day=DAY, **fields):
        return LeadFactory(campaign=campaign, country=country, created_at=at_noon(day), **fields)

    l1, l2, l3 = (lead(solar, country, partner=supplier) for country in ("US", "CA", "US"))
    lead(solar, "US", validity="invalid")
    l5 = lead(solar, "CA", day=OLD_DAY)
    l6, l7 = lead(roof, "DE"), lead(roof, "DE")
    for each in (l1, l2, l3, l5, l6, l7):
        sold(each)
    lead_set_status(lead=l2, status="returned", actor=None, reason="wrong number")
    lead_set_status(lead=l3, status="won", actor=None, sale_amount=Decimal("100.00"))
    lead_set_status(lead=l5, status="returned", actor=None, reason="too late to refund")
    DailyStatFactory(campaign=solar, date=DAY, impressions=5000, clicks=100, spend=Decimal("45.00"))
    DailyStatFactory(campaign=roof, date=DAY, impressions=2000, clicks=40, spend=Decimal("20.00"))
    return solar, roof


# By hand, OLD_DAY..DAY:
# Solar: lead sales 40 + 30 - 30 + 40 + 30 = 110 over 4 sold - 1 returned = 3 (average 36.67);
#   commission 100; revenue 210. Spend 45; payouts 3 x 10 - 10 = 20; cost 65; margin 145.
#   5 leads, 4 valid (all qualified): CPL 65 / 4 = 16.25; ROI 145 / 65; ROAS 210 / 65; EPC 210 / 100.
# Roof: lead sales 100 over 2 (average 50); revenue 100; spend 20, cost 20, margin 80; CPL 10; ROI 4; ROAS 5;
#   EPC 100 / 40.
SOLAR = {
    "leads": 5, "valid_leads": 4, "converted": 1, "returned": 2,
    "lead_revenue": Decimal("110"), "sold_leads": 3, "average_sale_price": Decimal("36.67"),
    "sale_revenue": Decimal("100"), "revenue": Decimal("210"),
    "media_spend": Decimal("45"), "supplier_cost": Decimal("20"), "cost": Decimal("65"), "margin": Decimal("145"),
    "cpl": Decimal("16.25"), "cost_per_qualified": Decimal("16.25"),
    "roi": Decimal("2.2308"), "roas": Decimal("3.2308"), "epc": Decimal("2.1000"),
}  # fmt: skip
ROOF = {
    "leads": 2, "valid_leads": 2, "converted": 0, "returned": 0,
    "lead_revenue": Decimal("100"), "sold_leads": 2, "average_sale_price": Decimal("50.00"),
    "sale_revenue": Decimal("0"), "revenue": Decimal("100"),
    "media_spend": Decimal("20"), "supplier_cost": Decimal("0"), "cost": Decimal("20"), "margin": Decimal("80"),
    "cpl": Decimal("10.00"), "cost_per_qualified": Decimal("10.00"),
    "roi": Decimal("4.0000"), "roas": Decimal("5.0000"), "epc": Decimal("2.5000"),
}  # fmt: skip


def test_the_selector_gives_the_hand_computed_p_and_l_per_currency(business):
    rows = report(date_from=OLD_DAY, date_to=DAY, group_by=["campaign"])

    assert [(row["campaign"], row["currency"]) for row in rows] == [("roof-b", "EUR"), ("solar-a", "USD")]
    for row, expected in zip(rows, (ROOF, SOLAR), strict=True):
        assert {name: row[name] for name in expected} == expected


def test_the_api_gives_the_same_figures(business, staff_client):
    response = staff_client.get(reverse("api-reports"), {"date_from": OLD_DAY, "date_to": DAY, "group_by": "campaign"})

    rows = response.json()["rows"]
    for row, expected in zip(rows, (ROOF, SOLAR), strict=True):
        assert {name: Decimal(row[name]) if isinstance(row[name], str) else row[name] for name in expected} == {
            name: Decimal(value) if isinstance(value, Decimal) else value for name, value in expected.items()
        }


def test_the_report_csv_gives_the_same_figures(business, client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))
    query = {"date_from": OLD_DAY, "date_to": DAY, "group_by": "campaign", "format": "csv"}

    lines = list(csv.DictReader(io.StringIO(client.get(reverse("campaign-report"), query).content.decode())))

    solar = next(line for line in lines if line["Campaign"] == "Solar A")
    assert (solar["Lead sales"], solar["Commissions"], solar["Revenue"]) == ("110.00", "100.00", "210.00")
    assert (solar["Media spend"], solar["Supplier payouts"], solar["Cost"], solar["Margin"]) == (
        "45.00",
        "20.00",
        "65.00",
        "145.00",
    )
    assert (solar["Sold"], solar["Avg. price"], solar["CPL"], solar["ROI (%)"], solar["ROAS (x)"]) == (
        "3",
        "36.67",
        "16.25",
        "223.08",
        "3.23",
    )
    roof = next(line for line in lines if line["Campaign"] == "Roof B")
    assert (roof["Revenue"], roof["Cost"], roof["Margin"], roof["Currency"]) == ("100.00", "20.00", "80.00", "EUR")


def test_the_dashboard_shows_the_last_seven_days_of_it(business, client, staff_user_in):
    # The last 7 days hold DAY but not OLD_DAY: solar's lead sales are 40 + 30 - 30 + 40 = 80.
    client.force_login(staff_user_in("Marketing"))

    html = client.get(reverse("admin:index"), {"days": 7, "currency": "USD"}).content.decode()

    values = dict(
        re.findall(r'data-metric="([^"]+)">\s*<div class="label">[^<]*</div>\s*<div class="value">([^<]*)</div>', html)
    )
    assert (values["Revenue"], values["Cost"], values["Margin"]) == ("180.00", "65.00", "115.00")
    assert values["ROI"] == "176.9%"  # 115 / 65


def test_total_epc_and_the_funnel_count_our_clicks_where_a_campaign_has_no_source_stats(db):
    from campaigns.tests.factories import ClickFactory
    from reporting.selectors import report_totals
    from reporting.selectors.dashboard import marketing_dashboard

    offer = OfferFactory(currency="USD", payout_per_lead=Decimal("0"), payout_per_sale=Decimal("0"))
    reported, tracked = (CampaignFactory(offer=offer) for _ in range(2))
    DailyStatFactory(campaign=reported, date=TODAY, clicks=10, spend=Decimal("0"))  # 10 clicks, no revenue
    for _ in range(10):  # no stats from the source: our 10 clicks, and a sale of 100.00
        ClickFactory(campaign=tracked)
    lead_set_status(lead=LeadFactory(campaign=tracked), status="won", actor=None, sale_amount=Decimal("100.00"))

    rows = report(date_from=TODAY, date_to=TODAY, group_by=["campaign"])
    [total] = report_totals(rows)

    assert sorted(row["epc"] for row in rows) == [Decimal("0"), Decimal("10.0000")]
    assert total["epc"] == Decimal("5.0000")  # 100.00 over 20 clicks, not over the source's 10 alone
    funnel = marketing_dashboard(today=TODAY)["funnel"]
    assert funnel[0] == {"label": "Clicks", "count": 20, "of_previous": None}

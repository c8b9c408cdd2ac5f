"""The report selector against a small data set whose every figure is computed by hand below.

Three campaigns: Solar A (native source A, USD offer of Sunny Co), Roof B (native source B, EUR
offer of Roof Co) and Solar push (push source, the same USD offer; spend and clicks, no leads). The
report runs from Sunday 9 to Tuesday 11 March 2025: Sunday is in the ISO week of Monday 3 March,
Monday and Tuesday in the week of 10 March. Everything happens at noon UTC.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import SUB_ID_PARAMS, TrafficSource
from campaigns.tests.factories import (
    AdvertiserFactory,
    CampaignFactory,
    ClickFactory,
    DailyStatFactory,
    LandingPageFactory,
    OfferFactory,
    TrafficSourceFactory,
)
from leads.tests.factories import LeadFactory
from reporting.selectors import GROUPINGS, report, report_totals

pytestmark = pytest.mark.django_db

SAT, SUN, MON, TUE, WED = (date(2025, 3, day) for day in (8, 9, 10, 11, 12))
WEEK_OF_MAR_3, WEEK_OF_MAR_10 = date(2025, 3, 3), date(2025, 3, 10)


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.get_current_timezone())


@pytest.fixture
def data(db):
    """Nine counted leads (L1-L9), four that never count, daily stats and tracked clicks:

    L1 solar-a SUN US mobile  Solar form z1 sub1=s1  hard valid   qualified     won 100.00 USD
    L2 solar-a MON US desktop Solar form z1          soft valid   qualified     returned (sale 40.00)
    L3 solar-a MON DE mobile  -          z2          hard valid   disqualified  won 70.00 GBP (not USD)
    L4 solar-a TUE US mobile  Solar form z1          hard suspect qualified     new
    L5 solar-a TUE US mobile  Solar form z1 sub1=s1  hard valid   qualified     duplicate of L1
    L6 solar-a TUE DE desktop -          -           soft invalid disqualified  new
    L7 roof-b  MON US mobile  Roof quiz  z2 sub1=s1  hard valid   qualified     won 300.00 EUR
    L8 roof-b  TUE FR desktop Roof quiz  z1          soft valid   qualified     contacted
    L9 roof-b  TUE US mobile  -          -           hard valid   qualified     won 50.00 (no currency: EUR)
    Stats (impressions / clicks / spend): solar-a SUN 1000/40/20.00, MON 2000/60/30.00, TUE 500/0/0.00;
    roof-b MON 4000/100/50.00 (none on TUE); solar-push MON 800/20/10.00.
    Tracked clicks: solar-a SUN 2 US mobile z1 (one with sub1=s1), MON 1 US desktop z1 and 1 DE mobile
    z2, TUE 1 US mobile z1; roof-b MON 3 US mobile z2, TUE 1 FR desktop z3; solar-push MON 2 US mobile.
    Outside the dates (SAT, WED) or sandbox leads: never counted.
    """
    sunny, roof = AdvertiserFactory(name="Sunny Co"), AdvertiserFactory(name="Roof Co")
    # No payout per sale: a sale earns the commission reported with it. A long return window: L2's
    # return (booked today) still reverses its sale.
    terms = {"payout_per_sale": Decimal("0"), "return_window_days": 10_000}
    solar_offer = OfferFactory(advertiser=sunny, name="Solar quote", currency="USD", **terms)
    roof_offer = OfferFactory(advertiser=roof, name="Roof quote", currency="EUR", **terms)
    source_a = TrafficSourceFactory(name="Native A", kind=TrafficSource.Kind.NATIVE)
    source_b = TrafficSourceFactory(name="Native B", kind=TrafficSource.Kind.NATIVE)
    push = TrafficSourceFactory(name="Push C", kind=TrafficSource.Kind.PUSH)
    solar_a = CampaignFactory(name="Solar A", slug="solar-a", traffic_source=source_a, offer=solar_offer)
    roof_b = CampaignFactory(name="Roof B", slug="roof-b", traffic_source=source_b, offer=roof_offer)
    solar_push = CampaignFactory(name="Solar push", slug="solar-push", traffic_source=push, offer=solar_offer)
    solar_form = LandingPageFactory(campaign=solar_a, name="Solar form")
    roof_quiz = LandingPageFactory(campaign=roof_b, name="Roof quiz")

    def lead(campaign, day, country, device, page, sub_ids, lead_type, **fields):
        # A won or returned lead comes with the sale commission (and reversal) the workflow books.
        return LeadFactory(
            campaign=campaign,
            created_at=at_noon(day),
            country=country,
            device_type=device,
            landing_page=page,
            sub_ids=sub_ids,
            lead_type=lead_type,
            **fields,
        )

    def won(amount: str, currency: str = "") -> dict:
        return {"status": "won", "sale_amount": Decimal(amount), "sale_currency": currency}

    z1_s1 = {"zone": "z1", "sub1": "s1"}
    first = lead(solar_a, SUN, "US", "mobile", solar_form, z1_s1, "hard", **won("100.00", "USD"))
    returned = {**won("40.00", "USD"), "status": "returned"}  # its sale was reversed
    lead(solar_a, MON, "US", "desktop", solar_form, {"zone": "z1"}, "soft", **returned)
    lead(
        solar_a, MON, "DE", "mobile", None, {"zone": "z2"}, "hard", **won("70.00", "GBP"), qualification="disqualified"
    )
    lead(solar_a, TUE, "US", "mobile", solar_form, {"zone": "z1"}, "hard", validity="suspect")
    lead(solar_a, TUE, "US", "mobile", solar_form, z1_s1, "hard", is_duplicate=True, duplicate_of=first)
    lead(solar_a, TUE, "DE", "desktop", None, {}, "soft", validity="invalid", qualification="disqualified")
    lead(roof_b, MON, "US", "mobile", roof_quiz, {"zone": "z2", "sub1": "s1"}, "hard", **won("300.00", "EUR"))
    lead(roof_b, TUE, "FR", "desktop", roof_quiz, {"zone": "z1"}, "soft", status="contacted")
    lead(roof_b, TUE, "US", "mobile", None, {}, "hard", **won("50.00"))
    # Never counted: outside the dates, or sandbox leads.
    lead(solar_a, SAT, "US", "mobile", solar_form, {"zone": "z1"}, "hard", **won("999.00"))
    lead(roof_b, WED, "US", "mobile", None, {"zone": "z2"}, "hard")
    lead(solar_a, MON, "US", "mobile", solar_form, {"zone": "z1"}, "hard", **won("500.00"), is_test=True)
    lead(roof_b, WED, "US", "mobile", None, {}, "hard", is_test=True)

    for campaign, day, impressions, clicks, spend in [
        (solar_a, SUN, 1000, 40, "20.00"),
        (solar_a, MON, 2000, 60, "30.00"),
        (solar_a, TUE, 500, 0, "0.00"),
        (roof_b, MON, 4000, 100, "50.00"),
        (solar_push, MON, 800, 20, "10.00"),
        (solar_a, SAT, 9999, 999, "999.00"),
        (roof_b, WED, 100, 10, "5.00"),
    ]:
        DailyStatFactory(campaign=campaign, date=day, impressions=impressions, clicks=clicks, spend=Decimal(spend))

    for campaign, day, country, device, sub_ids in [
        (solar_a, SUN, "US", "mobile", {"zone": "z1", "sub1": "s1"}),
        (solar_a, SUN, "US", "mobile", {"zone": "z1"}),
        (solar_a, MON, "US", "desktop", {"zone": "z1"}),
        (solar_a, MON, "DE", "mobile", {"zone": "z2"}),
        (solar_a, TUE, "US", "mobile", {"zone": "z1"}),
        *[(roof_b, MON, "US", "mobile", {"zone": "z2"})] * 3,
        (roof_b, TUE, "FR", "desktop", {"zone": "z3"}),
        *[(solar_push, MON, "US", "mobile", {})] * 2,
        (solar_a, SAT, "US", "mobile", {"zone": "z1"}),
        (roof_b, WED, "US", "mobile", {"zone": "z2"}),
    ]:
        ClickFactory(campaign=campaign, created_at=at_noon(day), country=country, device_type=device, sub_ids=sub_ids)

    return SimpleNamespace(
        sunny=sunny,
        roof=roof,
        solar_offer=solar_offer,
        roof_offer=roof_offer,
        source_a=source_a,
        source_b=source_b,
        push=push,
        solar_a=solar_a,
        roof_b=roof_b,
        solar_push=solar_push,
        solar_form=solar_form,
        roof_quiz=roof_quiz,
    )


def run(group_by: list[str], date_from: date = SUN, date_to: date = TUE, **kwargs) -> list[dict]:
    return report(date_from=date_from, date_to=date_to, group_by=group_by, **kwargs)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def counts(
    *,
    leads=0,
    valid=0,
    duplicates=0,
    suspect=0,
    invalid=0,
    qualified=0,
    hard=0,
    soft=0,
    converted=0,
    returned=0,
    conversion: str | None,
    validity: str | None,
) -> dict:
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
        "conversion_rate": _decimal(conversion),
        "validity_rate": _decimal(validity),
    }


def money(*, currency, impressions, clicks, tracked, spend, revenue, cpl, per_qualified, roi, roas, epc) -> dict:
    """The money of rows whose revenue is all sale commissions and whose cost all media spend (no lead
    sold, no supplier paid here: test_money_report covers those)."""
    return {
        "currency": currency,
        "impressions": impressions,
        "clicks": clicks,
        "tracked_clicks": tracked,
        "sold_leads": 0,
        "lead_revenue": Decimal("0"),
        "average_sale_price": None,
        "sale_revenue": _decimal(revenue),
        "revenue": _decimal(revenue),
        "media_spend": _decimal(spend),
        "supplier_cost": Decimal("0"),
        "cost": _decimal(spend),
        "margin": None if spend is None else Decimal(revenue) - Decimal(spend),
        "cpl": _decimal(cpl),
        "cost_per_qualified": _decimal(per_qualified),
        "roi": _decimal(roi),
        "roas": _decimal(roas),
        "epc": _decimal(epc),
    }


# Groupings that daily stats cannot express (country, device, landing page, sub id): no spend.
NO_STATS = {"impressions": None, "clicks": None, "spend": None, "cpl": None, "per_qualified": None}
NO_STATS_NOR_RATIOS = {**NO_STATS, "roi": None, "roas": None}
GBP_SALE = {"money_other_currencies": {"GBP": Decimal("70.00")}}  # L3's sale, never added to USD revenue

# Every figure below: valid = valid and not a duplicate; suspect and invalid leave duplicates out, so
# leads = valid + duplicates + suspect + invalid; qualified, hard, soft and converted count valid
# leads; conversion = converted / valid; validity = valid / leads; revenue = won sales in the
# offer's currency; CPL = spend / valid; cost per qualified = spend / qualified; ROI = (revenue -
# spend) / spend; ROAS = revenue / spend; EPC = revenue / clicks, or / tracked clicks without stats.

# roof-b: L7, L8, L9 (all valid and qualified; L7, L9 hard and won 300 + 50); stats MON only; 4 tracked.
ROOF_B_COUNTS = counts(
    leads=3, valid=3, qualified=3, hard=2, soft=1, converted=2, conversion="0.6667", validity="1.0000"
)
ROOF_B = {
    **ROOF_B_COUNTS,
    # CPL = CPQ = 50 / 3; ROI = (350 - 50) / 50; ROAS = 350 / 50; EPC = 350 / 100
    **money(
        currency="EUR", impressions=4000, clicks=100, tracked=4, spend="50.00", revenue="350.00",
        cpl="16.67", per_qualified="16.67", roi="6.0000", roas="7.0000", epc="3.5000",
    ),
}  # fmt: skip
# solar-a: L1-L6; valid L1 L2 L3, duplicate L5, suspect L4, invalid L6; qualified L1 L2; hard L1 L3;
# soft L2; converted L1 L3; returned L2. Revenue 100 (L3 is GBP). Stats 3500 / 100 / 50.00; 5 tracked.
SOLAR_A_COUNTS = counts(
    leads=6, valid=3, duplicates=1, suspect=1, invalid=1, qualified=2, hard=2, soft=1, converted=2, returned=1,
    conversion="0.6667", validity="0.5000",
)  # fmt: skip
SOLAR_A = {
    **SOLAR_A_COUNTS,
    # CPL = 50 / 3; CPQ = 50 / 2; ROI = (100 - 50) / 50; ROAS = 100 / 50; EPC = 100 / 100
    **money(
        currency="USD", impressions=3500, clicks=100, tracked=5, spend="50.00", revenue="100.00",
        cpl="16.67", per_qualified="25.00", roi="1.0000", roas="2.0000", epc="1.0000",
    ),
}  # fmt: skip
# solar-push: no leads (no rates, CPL or CPQ); 10.00 spent for nothing: ROI -1, ROAS 0; EPC 0 / 20.
NO_LEADS = counts(conversion=None, validity=None)
SOLAR_PUSH = {
    **NO_LEADS,
    **money(
        currency="USD", impressions=800, clicks=20, tracked=2, spend="10.00", revenue="0.00",
        cpl=None, per_qualified=None, roi="-1.0000", roas="0.0000", epc="0.0000",
    ),
}  # fmt: skip
# The Solar quote offer: solar-a and solar-push. Spend 60.00, clicks 120, 7 tracked.
SOLAR_OFFER = {
    **SOLAR_A_COUNTS,
    # CPL = 60 / 3; CPQ = 60 / 2; ROI = (100 - 60) / 60; ROAS = 100 / 60; EPC = 100 / 120
    **money(
        currency="USD", impressions=4300, clicks=120, tracked=7, spend="60.00", revenue="100.00",
        cpl="20.00", per_qualified="30.00", roi="0.6667", roas="1.6667", epc="0.8333",
    ),
}  # fmt: skip

# By day (and currency).
SUN_USD = {  # L1 won 100; solar-a stats 1000 / 40 / 20.00; 2 tracked
    **counts(leads=1, valid=1, qualified=1, hard=1, converted=1, conversion="1.0000", validity="1.0000"),
    **money(
        currency="USD", impressions=1000, clicks=40, tracked=2, spend="20.00", revenue="100.00",
        cpl="20.00", per_qualified="20.00", roi="4.0000", roas="5.0000", epc="2.5000",
    ),
}  # fmt: skip
MON_EUR = {  # L7 won 300; roof-b stats 4000 / 100 / 50.00; 3 tracked
    **counts(leads=1, valid=1, qualified=1, hard=1, converted=1, conversion="1.0000", validity="1.0000"),
    **money(
        currency="EUR", impressions=4000, clicks=100, tracked=3, spend="50.00", revenue="300.00",
        cpl="50.00", per_qualified="50.00", roi="5.0000", roas="6.0000", epc="3.0000",
    ),
}  # fmt: skip
# L2 returned (valid, qualified, soft), L3 won in GBP (valid, disqualified, hard)
MON_USD_COUNTS = counts(
    leads=2, valid=2, qualified=1, hard=1, soft=1, converted=1, returned=1, conversion="0.5000", validity="1.0000"
)
MON_USD = {  # solar-a 2000 / 60 / 30.00 + solar-push 800 / 20 / 10.00; tracked 2 + 2
    **MON_USD_COUNTS,
    **money(
        currency="USD", impressions=2800, clicks=80, tracked=4, spend="40.00", revenue="0.00",
        cpl="20.00", per_qualified="40.00", roi="-1.0000", roas="0.0000", epc="0.0000",
    ),
    **GBP_SALE,
}  # fmt: skip
TUE_EUR = {  # L8 contacted (soft), L9 won 50 (hard); roof-b has no stats on TUE: spend 0, so CPL 0.00
    **counts(leads=2, valid=2, qualified=2, hard=1, soft=1, converted=1, conversion="0.5000", validity="1.0000"),
    # ROI and ROAS divide by the zero spend; the source reported no clicks, so EPC = 50 / 1 tracked click
    **money(
        currency="EUR", impressions=0, clicks=0, tracked=1, spend="0.00", revenue="50.00",
        cpl="0.00", per_qualified="0.00", roi=None, roas=None, epc="50.0000",
    ),
}  # fmt: skip
TUE_USD = {  # L4 suspect, L5 duplicate, L6 invalid: no valid lead; solar-a 500 / 0 / 0.00; 1 tracked
    **counts(leads=3, duplicates=1, suspect=1, invalid=1, conversion=None, validity="0.0000"),
    # no reported clicks: EPC = 0 revenue / 1 tracked click
    **money(
        currency="USD", impressions=500, clicks=0, tracked=1, spend="0.00", revenue="0.00",
        cpl=None, per_qualified=None, roi=None, roas=None, epc="0.0000",
    ),
}  # fmt: skip
SOLAR_A_MON = {  # L2, L3; solar-a alone: 2000 / 60 / 30.00; tracked 2
    **MON_USD_COUNTS,
    **money(
        currency="USD", impressions=2000, clicks=60, tracked=2, spend="30.00", revenue="0.00",
        cpl="15.00", per_qualified="30.00", roi="-1.0000", roas="0.0000", epc="0.0000",
    ),
    **GBP_SALE,
}  # fmt: skip

# By country, device type or sub id: tracked clicks but no stats, so EPC = revenue / tracked clicks.
# L3 (valid, disqualified, won in GBP), L6 invalid
DE_USD_COUNTS = counts(leads=2, valid=1, invalid=1, hard=1, converted=1, conversion="1.0000", validity="0.5000")
# L1 won 100, L2 returned, L4 suspect, L5 duplicate
US_USD_COUNTS = counts(
    leads=4, valid=2, duplicates=1, suspect=1, qualified=2, hard=1, soft=1, converted=1, returned=1,
    conversion="0.5000", validity="0.5000",
)  # fmt: skip
L8_COUNTS = counts(leads=1, valid=1, qualified=1, soft=1, conversion="0.0000", validity="1.0000")
# one valid, qualified, hard lead that won: L1, L7 or L9
ONE_WON = counts(leads=1, valid=1, qualified=1, hard=1, converted=1, conversion="1.0000", validity="1.0000")
# L7 and L9
TWO_WON = counts(leads=2, valid=2, qualified=2, hard=2, converted=2, conversion="1.0000", validity="1.0000")


def tracked(currency: str, clicks: int, revenue: str, epc: str | None) -> dict:
    return money(currency=currency, tracked=clicks, revenue=revenue, epc=epc, **NO_STATS_NOR_RATIOS)


def campaign_columns(campaign) -> dict:
    return {"campaign": campaign.slug, "campaign_name": campaign.name, "campaign_id": campaign.id}


def source_columns(source) -> dict:
    return {"traffic_source_id": source.id, "traffic_source": source.name}


# --- Each grouping alone --------------------------------------------------------------------------


def test_by_campaign_keeps_spend_without_leads_and_lists_the_other_currency_apart(data):
    assert run(["campaign"]) == [
        {**campaign_columns(data.roof_b), **ROOF_B},
        {**campaign_columns(data.solar_a), **SOLAR_A, **GBP_SALE},
        {**campaign_columns(data.solar_push), **SOLAR_PUSH},
    ]


def test_by_traffic_source_kind_never_adds_two_currencies_together(data):
    # Both native campaigns are one kind but are paid in EUR and USD: two rows.
    assert run(["traffic_source_kind"]) == [
        {"traffic_source_kind": "native", **ROOF_B},
        {"traffic_source_kind": "native", **SOLAR_A, **GBP_SALE},
        {"traffic_source_kind": "push", **SOLAR_PUSH},
    ]


def test_by_traffic_source_keeps_two_sources_of_the_same_kind_apart(data):
    assert run(["traffic_source"]) == [
        {**source_columns(data.source_a), **SOLAR_A, **GBP_SALE},
        {**source_columns(data.source_b), **ROOF_B},
        {**source_columns(data.push), **SOLAR_PUSH},
    ]


def test_by_offer_adds_up_the_campaigns_of_the_offer(data):
    assert run(["offer"]) == [
        {"offer_id": data.solar_offer.id, "offer": "Solar quote", **SOLAR_OFFER, **GBP_SALE},
        {"offer_id": data.roof_offer.id, "offer": "Roof quote", **ROOF_B},
    ]


def test_by_advertiser(data):
    assert run(["advertiser"]) == [
        {"advertiser_id": data.sunny.id, "advertiser": "Sunny Co", **SOLAR_OFFER, **GBP_SALE},
        {"advertiser_id": data.roof.id, "advertiser": "Roof Co", **ROOF_B},
    ]


def test_by_day_one_row_per_day_and_currency(data):
    assert run(["day"]) == [
        {"day": SUN, **SUN_USD},
        {"day": MON, **MON_EUR},
        {"day": MON, **MON_USD},
        {"day": TUE, **TUE_EUR},
        {"day": TUE, **TUE_USD},
    ]


def test_by_week_starts_weeks_on_monday(data):
    # Sunday 9 March belongs to the week of Monday 3 March; Monday and Tuesday to the week of 10 March.
    assert run(["week"]) == [
        {"week": WEEK_OF_MAR_3, **SUN_USD},
        {"week": WEEK_OF_MAR_10, **ROOF_B},  # every roof-b lead, stat and click is on MON or TUE
        {
            "week": WEEK_OF_MAR_10,
            # L2-L6: valid L2 L3, duplicate L5, suspect L4, invalid L6
            **counts(
                leads=5, valid=2, duplicates=1, suspect=1, invalid=1, qualified=1, hard=1, soft=1, converted=1,
                returned=1, conversion="0.5000", validity="0.4000",
            ),
            # solar-a MON + TUE 2500 / 60 / 30.00 + solar-push 800 / 20 / 10.00; tracked 1 + 1 + 1 + 2
            **money(
                currency="USD", impressions=3300, clicks=80, tracked=5, spend="40.00", revenue="0.00",
                cpl="20.00", per_qualified="40.00", roi="-1.0000", roas="0.0000", epc="0.0000",
            ),
            **GBP_SALE,
        },
    ]  # fmt: skip


def test_by_country_has_tracked_clicks_but_no_spend(data):
    assert run(["country"]) == [
        # L3 (won in GBP), L6 invalid; 1 tracked click: EPC 0 / 1
        {"country": "DE", **DE_USD_COUNTS, **tracked("USD", 1, "0.00", "0.0000"), **GBP_SALE},
        {"country": "FR", **L8_COUNTS, **tracked("EUR", 1, "0.00", "0.0000")},
        # L7, L9 won 300 + 50; 3 tracked: EPC 350 / 3
        {"country": "US", **TWO_WON, **tracked("EUR", 3, "350.00", "116.6667")},
        # solar-a 4 tracked + solar-push 2: EPC 100 / 6
        {"country": "US", **US_USD_COUNTS, **tracked("USD", 6, "100.00", "16.6667")},
    ]


def test_by_device_type(data):
    assert run(["device_type"]) == [
        {"device_type": "desktop", **L8_COUNTS, **tracked("EUR", 1, "0.00", "0.0000")},
        # L2 returned, L6 invalid; 1 tracked
        {
            "device_type": "desktop",
            **counts(
                leads=2, valid=1, invalid=1, qualified=1, soft=1, returned=1, conversion="0.0000", validity="0.5000"
            ),
            **tracked("USD", 1, "0.00", "0.0000"),
        },
        {"device_type": "mobile", **TWO_WON, **tracked("EUR", 3, "350.00", "116.6667")},
        # L1 won 100, L3 won in GBP (disqualified), L4 suspect, L5 duplicate; tracked 4 + 2
        {
            "device_type": "mobile",
            **counts(
                leads=4, valid=2, duplicates=1, suspect=1, qualified=1, hard=2, converted=2, conversion="1.0000",
                validity="0.5000",
            ),
            **tracked("USD", 6, "100.00", "16.6667"),
            **GBP_SALE,
        },
    ]  # fmt: skip


def test_by_landing_page_knows_neither_spend_nor_clicks_and_puts_leads_without_one_last(data):
    no_traffic = {"tracked": None, "epc": None, **NO_STATS_NOR_RATIOS}
    assert run(["landing_page"]) == [
        # L1, L2, L4, L5
        {
            "landing_page_id": data.solar_form.id,
            "landing_page": "Solar form",
            **US_USD_COUNTS,
            **money(currency="USD", revenue="100.00", **no_traffic),
        },
        # L7 won 300, L8
        {
            "landing_page_id": data.roof_quiz.id,
            "landing_page": "Roof quiz",
            **counts(
                leads=2, valid=2, qualified=2, hard=1, soft=1, converted=1, conversion="0.5000", validity="1.0000"
            ),
            **money(currency="EUR", revenue="300.00", **no_traffic),
        },
        # L9 won 50
        {
            "landing_page_id": None,
            "landing_page": None,
            **ONE_WON,
            **money(currency="EUR", revenue="50.00", **no_traffic),
        },
        # L3, L6
        {
            "landing_page_id": None,
            "landing_page": None,
            **DE_USD_COUNTS,
            **money(currency="USD", revenue="0.00", **no_traffic),
            **GBP_SALE,
        },
    ]


Z1_EUR = {**L8_COUNTS, **tracked("EUR", 0, "0.00", None)}  # L8; no roof-b click in z1: no EPC
Z1_USD = {**US_USD_COUNTS, **tracked("USD", 4, "100.00", "25.0000")}  # L1 L2 L4 L5; 4 tracked
Z2_EUR = {**ONE_WON, **tracked("EUR", 3, "300.00", "100.0000")}  # L7; 3 tracked
Z2_USD = {  # L3 (disqualified, won in GBP); 1 tracked
    **counts(leads=1, valid=1, hard=1, converted=1, conversion="1.0000", validity="1.0000"),
    **tracked("USD", 1, "0.00", "0.0000"),
    **GBP_SALE,
}
Z3_EUR = {**NO_LEADS, **tracked("EUR", 1, "0.00", "0.0000")}  # a click, no lead: no rates
NO_ZONE_EUR = {**ONE_WON, **tracked("EUR", 0, "50.00", None)}  # L9
L6_COUNTS = counts(leads=1, invalid=1, conversion=None, validity="0.0000")


def test_by_zone_counts_leads_and_tracked_clicks_of_each_zone(data):
    assert run(["zone"]) == [
        {"zone": "z1", **Z1_EUR},
        {"zone": "z1", **Z1_USD},
        {"zone": "z2", **Z2_EUR},
        {"zone": "z2", **Z2_USD},
        {"zone": "z3", **Z3_EUR},
        {"zone": None, **NO_ZONE_EUR},
        # L6; solar-push's 2 clicks have no sub ids
        {"zone": None, **L6_COUNTS, **tracked("USD", 2, "0.00", "0.0000")},
    ]


def test_by_sub1(data):
    assert run(["sub1"]) == [
        {"sub1": "s1", **ONE_WON, **tracked("EUR", 0, "300.00", None)},
        # L1 won 100, L5 its duplicate; 1 tracked click with s1
        {
            "sub1": "s1",
            **counts(
                leads=2, valid=1, duplicates=1, qualified=1, hard=1, converted=1, conversion="1.0000", validity="0.5000"
            ),
            **tracked("USD", 1, "100.00", "100.0000"),
        },
        # L8, L9 won 50; all 4 roof-b clicks: EPC 50 / 4
        {
            "sub1": None,
            **counts(leads=2, valid=2, qualified=2, hard=1, soft=1, converted=1, conversion="0.5000", validity="1.0000"),
            **tracked("EUR", 4, "50.00", "12.5000"),
        },
        # L2 returned, L3 won in GBP, L4 suspect, L6 invalid; 4 solar-a clicks without sub1 + 2 solar-push
        {
            "sub1": None,
            **counts(
                leads=4, valid=2, suspect=1, invalid=1, qualified=1, hard=1, soft=1, converted=1, returned=1,
                conversion="0.5000", validity="0.5000",
            ),
            **tracked("USD", 6, "0.00", "0.0000"),
            **GBP_SALE,
        },
    ]  # fmt: skip


@pytest.mark.parametrize("name", SUB_ID_PARAMS)
def test_every_sub_id_groups_leads_and_clicks_by_its_own_value(name):
    other = "sub2" if name == "sub1" else "sub1"  # a value under another sub id must not count here
    campaign = CampaignFactory(offer__currency="USD")
    LeadFactory(campaign=campaign, created_at=at_noon(MON), sub_ids={name: "v1"})
    LeadFactory(campaign=campaign, created_at=at_noon(MON), sub_ids={other: "v1"})
    for sub_ids in ({name: "v1"}, {name: "v3"}, {other: "v1"}):
        ClickFactory(campaign=campaign, created_at=at_noon(MON), sub_ids=sub_ids)
    one_valid_lead = counts(leads=1, valid=1, qualified=1, hard=1, conversion="0.0000", validity="1.0000")

    assert run([name], MON, MON) == [
        {name: "v1", **one_valid_lead, **tracked("USD", 1, "0.00", "0.0000")},
        {name: "v3", **NO_LEADS, **tracked("USD", 1, "0.00", "0.0000")},
        {name: None, **one_valid_lead, **tracked("USD", 1, "0.00", "0.0000")},
    ]


# --- Combinations --------------------------------------------------------------------------------


def test_by_campaign_and_day(data):
    assert run(["campaign", "day"]) == [
        {**campaign_columns(data.roof_b), "day": MON, **MON_EUR},
        {**campaign_columns(data.roof_b), "day": TUE, **TUE_EUR},
        {**campaign_columns(data.solar_a), "day": SUN, **SUN_USD},
        {**campaign_columns(data.solar_a), "day": MON, **SOLAR_A_MON},
        {**campaign_columns(data.solar_a), "day": TUE, **TUE_USD},
        {**campaign_columns(data.solar_push), "day": MON, **SOLAR_PUSH},
    ]


def test_by_traffic_source_and_zone(data):
    assert run(["traffic_source", "zone"]) == [
        {**source_columns(data.source_a), "zone": "z1", **Z1_USD},
        {**source_columns(data.source_a), "zone": "z2", **Z2_USD},
        # L6; every solar-a click has a zone
        {**source_columns(data.source_a), "zone": None, **L6_COUNTS, **tracked("USD", 0, "0.00", None)},
        {**source_columns(data.source_b), "zone": "z1", **Z1_EUR},
        {**source_columns(data.source_b), "zone": "z2", **Z2_EUR},
        {**source_columns(data.source_b), "zone": "z3", **Z3_EUR},
        {**source_columns(data.source_b), "zone": None, **NO_ZONE_EUR},
        {**source_columns(data.push), "zone": None, **NO_LEADS, **tracked("USD", 2, "0.00", "0.0000")},
    ]


# --- Filters, dates, test leads ----------------------------------------------------------------


def test_a_traffic_source_filter_narrows_leads_stats_and_clicks(data):
    # solar-push's MON spend and clicks are left out: solar-a alone on MON.
    assert run(["day"], filters={"traffic_source": [data.source_a.id]}) == [
        {"day": SUN, **SUN_USD},
        {"day": MON, **SOLAR_A_MON},
        {"day": TUE, **TUE_USD},
    ]


def test_a_country_filter_leaves_spend_unknown_but_keeps_tracked_clicks(data):
    assert run(["campaign"], filters={"country": ["US"]}) == [
        {**campaign_columns(data.roof_b), **TWO_WON, **tracked("EUR", 3, "350.00", "116.6667")},
        # L1 L2 L4 L5; the 4 US solar-a clicks
        {**campaign_columns(data.solar_a), **Z1_USD},
        # no lead, 2 US clicks
        {**campaign_columns(data.solar_push), **NO_LEADS, **tracked("USD", 2, "0.00", "0.0000")},
    ]


def test_a_zone_filter(data):
    assert run(["campaign"], filters={"zone": ["z2"]}) == [
        {**campaign_columns(data.roof_b), **Z2_EUR},
        {**campaign_columns(data.solar_a), **Z2_USD},
    ]


def test_a_landing_page_filter_knows_no_traffic(data):
    no_traffic = {"tracked": None, "epc": None, **NO_STATS_NOR_RATIOS}
    assert run(["day"], filters={"landing_page": [data.solar_form.id]}) == [
        {"day": SUN, **ONE_WON, **money(currency="USD", revenue="100.00", **no_traffic)},  # L1
        {
            "day": MON,  # L2 returned
            **counts(leads=1, valid=1, qualified=1, soft=1, returned=1, conversion="0.0000", validity="1.0000"),
            **money(currency="USD", revenue="0.00", **no_traffic),
        },
        {
            "day": TUE,  # L4 suspect, L5 duplicate
            **counts(leads=2, duplicates=1, suspect=1, conversion=None, validity="0.0000"),
            **money(currency="USD", revenue="0.00", **no_traffic),
        },
    ]


def test_leads_stats_and_clicks_outside_the_dates_and_test_leads_are_not_counted(data):
    # WED: one real roof-b lead (and a sandbox one), stats 100 / 10 / 5.00, one click.
    assert run(["campaign"], WED, WED) == [
        {
            **campaign_columns(data.roof_b),
            **counts(leads=1, valid=1, qualified=1, hard=1, conversion="0.0000", validity="1.0000"),
            **money(
                currency="EUR", impressions=100, clicks=10, tracked=1, spend="5.00", revenue="0.00",
                cpl="5.00", per_qualified="5.00", roi="-1.0000", roas="0.0000", epc="0.0000",
            ),
        }
    ]  # fmt: skip


def test_a_lead_counts_on_its_day_in_the_site_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # 02:00 UTC on Monday is 22:00 on Sunday in New York (UTC-4 since DST began that Sunday).
    LeadFactory(created_at=datetime(2025, 3, 10, 2, tzinfo=UTC))

    assert [(row["day"], row["leads"]) for row in run(["day"], SUN, SUN)] == [(SUN, 1)]
    assert run(["day"], MON, MON) == []


def test_without_money_rows_have_counts_only_and_groups_with_only_spend_vanish(data):
    # As partners see it: no currency, traffic or money; solar-push has no leads, so no row.
    assert run(["campaign"], include_money=False) == [
        {**campaign_columns(data.roof_b), **ROOF_B_COUNTS},
        {**campaign_columns(data.solar_a), **SOLAR_A_COUNTS},
    ]


# --- Totals ----------------------------------------------------------------------------------------


def test_totals_add_up_the_rows_per_currency_and_redo_the_ratios(data):
    # USD: solar-a + solar-push, which is the Solar quote offer; EUR: roof-b. The GBP sale is added up
    # apart, never into USD revenue.
    assert report_totals(run(["campaign"])) == [ROOF_B, {**SOLAR_OFFER, **GBP_SALE}]


def test_totals_keep_unknown_spend_unknown_and_use_tracked_clicks_for_epc(data):
    assert report_totals(run(["country"])) == [
        # FR + US: L7 L8 L9 (as roof-b); tracked 1 + 3; EPC 350 / 4
        {**ROOF_B_COUNTS, **tracked("EUR", 4, "350.00", "87.5000")},
        # DE + US: L1-L6 (as solar-a); tracked 1 + 6; EPC 100 / 7; L3's GBP sale apart
        {**SOLAR_A_COUNTS, **tracked("USD", 7, "100.00", "14.2857"), **GBP_SALE},
    ]


def test_totals_of_no_rows_are_empty():
    assert report_totals([]) == []


def test_totals_of_a_report_without_money(data):
    # L1-L9: valid L1 L2 L3 L7 L8 L9; qualified those but L3; hard L1 L3 L7 L9; converted L1 L3 L7 L9
    assert report_totals(run(["campaign"], include_money=False)) == [
        {
            "currency": None,
            **counts(
                leads=9, valid=6, duplicates=1, suspect=1, invalid=1, qualified=5, hard=4, soft=2, converted=4,
                returned=1, conversion="0.6667", validity="0.6667",
            ),
        }
    ]  # fmt: skip


# --- Order, errors, cost ---------------------------------------------------------------------------


def test_groups_sort_by_id_as_a_number_not_as_text():
    # Inserted out of order with ids whose text sorts the other way ("10" < "9").
    for offer_id in (10, 9):
        LeadFactory(campaign__offer=OfferFactory(id=offer_id, name=f"Offer {offer_id}"), created_at=at_noon(MON))

    assert [row["offer_id"] for row in run(["offer"], MON, MON)] == [9, 10]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"group_by": ["weather"]}, "Unknown report grouping: weather"),
        ({"group_by": ["campaign"], "filters": {"weather": ["sunny"]}}, "Unknown report filter: weather"),
        # the dates choose the days
        ({"group_by": ["campaign"], "filters": {"day": [MON]}}, "Unknown report filter: day"),
        # the end of a period is the start of the day after it: there is none after 9999-12-31
        ({"group_by": ["day"], "date_to": date(9999, 12, 31)}, "Report days lie between"),
    ],
)
def test_an_unknown_grouping_or_filter_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        report(**{"date_from": MON, "date_to": MON, **kwargs})


def test_an_empty_sub_id_and_a_missing_one_are_one_group():
    campaign = CampaignFactory(offer__currency="USD")
    for sub_ids in ({"zone": ""}, {}, {"zone": "z1"}):
        LeadFactory(campaign=campaign, created_at=at_noon(MON), sub_ids=sub_ids)
        ClickFactory(campaign=campaign, created_at=at_noon(MON), sub_ids=sub_ids)

    rows = run(["zone"], MON, MON, filters={"campaign": [campaign.pk]})

    assert [(row["zone"], row["leads"], row["tracked_clicks"]) for row in rows] == [("z1", 1, 1), (None, 2, 2)]


def test_totals_add_spend_to_the_fraction_of_a_cent_before_rounding():
    # Three days of 0.3333 spend: 0.9999 in all, which rounds to 1.00 (the rounded days add to 0.99).
    campaign = CampaignFactory(offer__currency="USD")
    for day in (SUN, MON, TUE):
        DailyStatFactory(campaign=campaign, date=day, spend=Decimal("0.3333"))

    [total] = report_totals(run(["day"], filters={"campaign": [campaign.pk]}))

    assert total["media_spend"].quantize(Decimal("0.01")) == Decimal("1.00")


def _run_counting_queries(group_by: list[str], date_from: date = SUN, date_to: date = TUE, **kwargs):
    with CaptureQueriesContext(connection) as queries:
        rows = run(group_by, date_from, date_to, **kwargs)
    return rows, len(queries)


def _a_lead_of_its_own(campaign, day: date, number: int) -> None:
    """A sold lead with a country, device, landing page and sub ids no other lead has, a day of stats and a click."""
    country, device = f"{chr(ord('A') + number // 26)}{chr(ord('A') + number % 26)}", f"device{number}"
    sub_ids = {name: f"{name}-{number}" for name in SUB_ID_PARAMS}
    LeadFactory(
        campaign=campaign,
        created_at=at_noon(day),
        country=country,
        device_type=device,
        landing_page=LandingPageFactory(campaign=campaign),
        sub_ids=sub_ids,
        lead_type="hard",
        status="won",
        sale_amount=Decimal("10.00"),
    )
    DailyStatFactory(campaign=campaign, date=day, impressions=100, clicks=10, spend=Decimal("1.00"))
    ClickFactory(campaign=campaign, created_at=at_noon(day), country=country, device_type=device, sub_ids=sub_ids)


FEB_1 = date(2025, 2, 1)
# Thirty more leads, one a day from 6 February to 7 March: a row more each in every grouping but these.
MORE_ROWS = {"traffic_source_kind": 5, "week": 4}  # the 5 kinds not yet used; the weeks of 3 to 24 February


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_every_grouping_costs_the_same_four_queries_or_fewer_for_a_few_rows_or_thirty_more(data, grouping):
    few, few_queries = _run_counting_queries([grouping], FEB_1, TUE)
    kinds = list(TrafficSource.Kind)
    for number in range(30):
        source = TrafficSourceFactory(kind=kinds[number % len(kinds)])
        campaign = CampaignFactory(traffic_source=source, offer__currency="USD")
        _a_lead_of_its_own(campaign, date(2025, 2, 6) + timedelta(days=number), number)
    many, many_queries = _run_counting_queries([grouping], FEB_1, TUE)

    # leads, ledger, daily stats, tracked clicks (or the rollups), whatever the number of rows
    assert few_queries == many_queries <= 4
    assert few and len(many) == len(few) + MORE_ROWS.get(grouping, 30)
    assert sum(row["leads"] for row in many) == sum(row["leads"] for row in few) + 30
    if grouping != "landing_page":  # tracked clicks do not know their landing page
        assert sum(row["tracked_clicks"] for row in many) == sum(row["tracked_clicks"] for row in few) + 30


def test_a_combined_and_filtered_report_costs_the_same_four_queries_or_fewer_for_8_rows_or_38(data):
    filters = {"traffic_source": [data.source_a.id, data.source_b.id]}
    few, few_queries = _run_counting_queries(["campaign", "week", "zone"], filters=filters)
    for number in range(30):  # a campaign more of each source (and one of another source, left out)
        source = data.source_a if number % 2 else data.source_b
        _a_lead_of_its_own(CampaignFactory(traffic_source=source, offer__currency="USD"), MON, number)
    _a_lead_of_its_own(CampaignFactory(traffic_source=data.push, offer__currency="USD"), MON, 30)
    many, many_queries = _run_counting_queries(["campaign", "week", "zone"], filters=filters)

    assert few_queries == many_queries <= 4
    assert len(few) == 8  # roof-b z1 z2 z3 none; solar-a SUN z1, W2 z1 z2 none
    assert len(many) == 38
    assert {(row["week"], row["zone"], row["leads"]) for row in many if row not in few} == {
        (WEEK_OF_MAR_10, f"zone-{number}", 1) for number in range(30)
    }


def test_a_campaign_moved_to_another_offer_keeps_its_past_spend_with_its_past_leads():
    # MON: the campaign sells a USD offer (1 lead, 10.00 spent); TUE: moved to a EUR offer (1 lead, 4.00).
    campaign = CampaignFactory(offer__currency="USD")
    usd_offer = campaign.offer
    DailyStatFactory(campaign=campaign, date=MON, clicks=0, spend=Decimal("10.00"))
    LeadFactory(campaign=campaign, created_at=at_noon(MON))
    ClickFactory.create_batch(2, campaign=campaign, created_at=at_noon(MON))
    campaign.offer = OfferFactory(currency="EUR")
    campaign.save()
    DailyStatFactory(campaign=campaign, date=TUE, clicks=0, spend=Decimal("4.00"))
    LeadFactory(campaign=campaign, created_at=at_noon(TUE))
    ClickFactory(campaign=campaign, created_at=at_noon(TUE))

    by_offer = run(["offer"], MON, TUE, filters={"campaign": [campaign.pk]})
    by_campaign = run(["campaign"], MON, TUE, filters={"campaign": [campaign.pk]})

    figures = [
        (row["currency"], row["leads"], row["media_spend"], row["cpl"], row["tracked_clicks"]) for row in by_offer
    ]
    assert figures == [
        ("USD", 1, Decimal("10.00"), Decimal("10.00"), 2),
        ("EUR", 1, Decimal("4.00"), Decimal("4.00"), 1),
    ]
    assert [row["offer_id"] for row in by_offer] == [usd_offer.pk, campaign.offer_id]
    # One campaign, two currencies: a row each, never added together.
    assert [(row["currency"], row["media_spend"], row["tracked_clicks"]) for row in by_campaign] == [
        ("EUR", Decimal("4.00"), 1),
        ("USD", Decimal("10.00"), 2),
    ]

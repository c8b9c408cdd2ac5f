"""The admin index: the marketing dashboard for Marketing and Managers, the queue for Sales."""

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import TrafficSource
from campaigns.tests.factories import CampaignFactory, DailyStatFactory, OfferFactory
from leads.tests.factories import LeadFactory
from reporting.charts import bar_chart, line_chart

pytestmark = pytest.mark.django_db


def days_ago(days: int) -> datetime.date:
    return timezone.localdate() - datetime.timedelta(days=days)


def at_noon(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def week():
    """Two campaigns over the last 7 days, and one in the 7 days before.

    Current: solar (push) spent 40 + 10 on 150 clicks: 3 valid leads (won 100, won 60, contacted) and
    1 invalid; roofing (native) spent 50 on 80 clicks: 1 valid lead, not converted.
    Previous: solar spent 20 on 100 clicks: 2 valid leads, one won 30.
    """
    solar = CampaignFactory(name="Solar push", traffic_source__kind=TrafficSource.Kind.PUSH)
    roofing = CampaignFactory(name="Roofing <b>native</b>", traffic_source__kind=TrafficSource.Kind.NATIVE)
    DailyStatFactory(campaign=solar, date=days_ago(1), clicks=100, spend=Decimal("40.00"))
    DailyStatFactory(campaign=solar, date=days_ago(2), clicks=50, spend=Decimal("10.00"))
    DailyStatFactory(campaign=roofing, date=days_ago(1), clicks=80, spend=Decimal("50.00"))
    DailyStatFactory(campaign=solar, date=days_ago(8), clicks=100, spend=Decimal("20.00"))
    for amount in ("100.00", "60.00"):
        LeadFactory(campaign=solar, created_at=at_noon(days_ago(1)), status="won", sale_amount=Decimal(amount))
    LeadFactory(campaign=solar, created_at=at_noon(days_ago(2)), status="contacted")
    LeadFactory(campaign=solar, created_at=at_noon(days_ago(2)), validity="invalid")
    LeadFactory(campaign=roofing, created_at=at_noon(days_ago(1)))
    LeadFactory(campaign=solar, created_at=at_noon(days_ago(8)), status="won", sale_amount=Decimal("30.00"))
    LeadFactory(campaign=solar, created_at=at_noon(days_ago(9)))
    return solar, roofing


def tiles(html: str) -> dict[str, tuple[str, str]]:
    found = re.findall(
        r'data-metric="([^"]+)">\s*<div class="label">[^<]*</div>\s*<div class="value">([^<]*)</div>\s*'
        r'<div class="change ?(?:lc-)?([a-z]*)">([^<]*)<',
        html,
    )
    return {label: (value, change.strip(), direction) for label, value, direction, change in found}


def test_marketing_sees_kpis_of_the_period_against_the_previous_one(client, staff_user_in, week):
    client.force_login(staff_user_in("Marketing"))

    html = client.get(reverse("admin:index"), {"days": 7}).content.decode()

    # spend 100 vs 20; revenue 160 vs 30; leads 5 vs 2; valid 4 vs 2; CPL 100/4 vs 20/2;
    # conversion 2/4 vs 1/2; ROI (160-100)/100 vs (30-20)/20; ROAS 160/100 vs 30/20.
    assert tiles(html) == {
        "Cost": ("100.00", "+400.0%", ""),  # more spend is not good or bad news by itself
        "Margin": ("60.00", "+500.0%", "better"),  # 160 - 100 against 30 - 20
        "Revenue": ("160.00", "+433.3%", "better"),
        "Leads": ("5", "+150.0%", "better"),
        "Valid leads": ("4", "+100.0%", "better"),
        "CPL": ("25.00", "+150.0%", "worse"),
        "Conversion rate": ("50.0%", "+0.0 pts", ""),
        "ROI": ("60.0%", "+10.0 pts", "better"),
        "ROAS": ("1.60x", "+6.7%", "better"),
    }


def test_the_charts_are_inline_svg_with_no_outside_asset(client, staff_user_in, week):
    client.force_login(staff_user_in("Managers"))

    html = client.get(reverse("admin:index"), {"days": 7}).content.decode()

    charts = re.findall(r'<svg class="lc-chart" role="img" aria-label="([^"]+)"', html)
    assert charts == [
        "Cost and revenue per day, USD",
        "Funnel: clicks, leads, valid, qualified, converted, each stage as a share of the one before",
        "CPL by traffic source kind, USD",
        "ROI by traffic source kind",
    ]
    # Funnel: 230 clicks, 5 leads (2.2 %), 4 valid (80 %), 4 qualified (100 %), 2 converted (50 %).
    for shown in ("230", "5 · 2.2% of clicks", "4 · 80.0% of leads", "4 · 100.0% of valid", "2 · 50.0% of qualified"):
        assert f">{shown}</text>" in html
    # CPL by kind: push 50 / 3 valid, native 50 / 1; ROI push (160-50)/50, native (0-50)/50 drawn in red.
    for shown in ("16.67", "50.00", "220.0%", "-100.0%"):
        assert f">{shown}</text>" in html
    assert 'fill="#b5485d"' in html
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts and all(src.startswith("/static/") for src in scripts)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


def test_the_best_and_worst_campaigns_by_roi_are_listed_and_names_escaped(client, staff_user_in, week):
    _, roofing = week
    client.force_login(staff_user_in("Marketing"))

    html = client.get(reverse("admin:index"), {"days": 7}).content.decode()

    best, worst = re.findall(r'<table class="lc-table ranked-campaigns">(.*?)</table>', html, re.S)
    assert "Solar push" in best and "220.0%" in best and "Roofing" not in best
    assert "Roofing &lt;b&gt;native&lt;/b&gt;" in worst and "-100.0%" in worst
    assert reverse("admin:campaigns_campaign_change", args=[roofing.pk]) in worst


def test_money_in_two_currencies_is_shown_one_currency_at_a_time(client, staff_user_in, week):
    euro = CampaignFactory(name="Euro native", offer=OfferFactory(currency="EUR"))
    DailyStatFactory(campaign=euro, date=days_ago(1), clicks=10, spend=Decimal("5.00"))
    client.force_login(staff_user_in("Marketing"))

    default = client.get(reverse("admin:index"), {"days": 7}).content.decode()
    in_euro = client.get(reverse("admin:index"), {"days": 7, "currency": "EUR"}).content.decode()

    assert tiles(default)["Cost"][0] == "100.00" and "(USD)" in default
    assert tiles(in_euro)["Cost"][0] == "5.00" and "(EUR)" in in_euro
    assert tiles(in_euro)["CPL"][0] == "—"  # nothing valid to divide by
    assert "money is never added across currencies" in default


def test_an_empty_period_shows_dashes_not_errors(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("admin:index"), {"days": "bogus"})

    assert response.status_code == 200
    shown = tiles(response.content.decode())
    assert shown["Cost"] == ("0.00", "no comparison", "")
    assert shown["CPL"][0] == shown["ROI"][0] == shown["Conversion rate"][0] == "—"


def test_sales_see_their_queue_not_the_money(client, staff_user_in, week):
    rep = staff_user_in("Sales")
    solar, _ = week
    LeadFactory(campaign=solar, assigned_to=rep, status="working", next_follow_up=days_ago(0), first_name="Due")
    LeadFactory(campaign=solar, assigned_to=rep, status="contacted", score=95, first_name="Hot")
    LeadFactory(campaign=solar, assigned_to=rep, status="won", first_name="Closed")
    client.force_login(rep)

    html = client.get(reverse("admin:index")).content.decode()

    assert 'id="campaign-dashboard"' not in html and "Margin" not in html
    queue = re.search(r'<section class="lc-card" id="sales-queue">(.*?)</section>', html, re.S).group(1)
    assert "Your queue: 2 open leads" in queue
    assert queue.index("Due") < queue.index("Hot") and "Closed" not in queue
    # Unassigned, open and not invalid: the current and previous solar and roofing leads not won.
    assert "3 leads wait unassigned" in queue


@pytest.mark.parametrize("group, ceiling", [("Marketing", 18), ("Managers", 19), ("Sales", 8), (None, 17)])
def test_the_index_costs_a_fixed_number_of_queries(
    client, staff_user_in, week, group, ceiling, django_assert_max_num_queries
):
    client.force_login(staff_user_in(group))
    client.get(reverse("admin:index"))  # warm the content type and permission caches
    with django_assert_max_num_queries(ceiling) as few:
        client.get(reverse("admin:index"))
    for number in range(10):
        campaign = CampaignFactory(name=f"Extra {number}")
        DailyStatFactory(campaign=campaign, date=days_ago(number % 5))
        LeadFactory.create_batch(2, campaign=campaign, created_at=at_noon(days_ago(number % 5)))

    with django_assert_max_num_queries(ceiling) as many:
        response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert len(many) == len(few)


def test_bar_chart_escapes_labels_and_draws_no_bar_for_a_missing_value():
    svg = bar_chart([("<script>", Decimal("2"), "2.00"), ("none", None, "—")], title='a "quoted" title')

    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-label="a &quot;quoted&quot; title"' in svg
    assert svg.count("<rect") == 1


def test_line_chart_scales_to_a_round_ceiling():
    svg = line_chart(["Mon", "Tue"], {"Spend": [Decimal("0"), Decimal("730")]}, title="t")

    assert ">1,000</text>" in svg and ">500</text>" in svg  # axis up to the next 1, 2 or 5 x 10^n
    assert "<polyline" in svg


def test_a_previous_period_the_business_barely_ran_in_reads_new_not_thousands_of_percent(client, staff_user_in):
    solar = CampaignFactory(name="Solar push")
    for day in range(1, 30):
        LeadFactory(campaign=solar, created_at=at_noon(days_ago(day)))
    LeadFactory(campaign=solar, created_at=at_noon(days_ago(30)))  # the previous period's last day only
    client.force_login(staff_user_in("Marketing"))

    shown = tiles(client.get(reverse("admin:index"), {"days": 30}).content.decode())

    assert shown["Leads"] == ("29", "new", "new")
    assert shown["Cost"] == ("0.00", "no comparison", "")  # nothing now, nothing before


def test_the_funnel_shows_every_stage_and_the_daily_chart_marks_today_as_unfinished(client, staff_user_in, week):
    client.force_login(staff_user_in("Marketing"))

    html = client.get(reverse("admin:index"), {"days": 7}).content.decode()

    funnel = re.search(r'<svg class="lc-chart"[^>]*aria-label="Funnel:.*?</svg>', html, re.S).group(0)
    widths = [float(width) for width in re.findall(r'<rect [^>]*width="([\d.]+)"', funnel)]
    assert len(widths) == 5 and min(widths) >= 3  # 5 leads of 230 clicks is a bar, not a sliver
    daily = re.search(r'<svg class="lc-chart"[^>]*aria-label="Cost and revenue per day.*?</svg>', html, re.S).group(0)
    assert 'class="partial-day"' in daily and ">today, so far</text>" in daily
    # The first and last dates hang inwards, so neither is cut at the chart's edge.
    labels = re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="(start|middle|end)"[^>]*>[A-Z][a-z]{2} \d{2}<', daily)
    assert labels[0] == "start" and labels[-1] == "end" and len(labels) == 7

import csv
import datetime
import io
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import TrafficSource
from campaigns.tests.factories import (
    AdvertiserFactory,
    CampaignFactory,
    ClickFactory,
    DailyStatFactory,
    OfferFactory,
    TrafficSourceFactory,
)
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

URL = reverse("campaign-report")
HEADERS = [
    "Leads",
    "Valid",
    "Revenue",
    "Cost",
    "Margin",
    "ROI",
    "ROAS",
    "CPL",
    "EPC",
    "Lead sales",
    "Sold",
    "Avg. price",
    "Commissions",
    "Media spend",
    "Supplier payouts",
    "Cost/qualified",
    "Qualified",
    "Converted",
    "Returned",
    "Conv. rate",
    "Validity",
    "Duplicates",
    "Suspect",
    "Invalid",
    "Hard",
    "Soft",
    "Impressions",
    "Clicks",
    "Tracked clicks",
    "Currency",
]
PERCENT_HEADERS = {"Conv. rate", "Validity", "ROI"}
TIMES_HEADERS = {"ROAS"}  # revenue per unit of spend: 2.40x


class ReportTable(HTMLParser):
    """The report table of a page as text: headers, body rows and footer rows, and the links in it."""

    def __init__(self, html: str):
        super().__init__()
        self.headers, self.rows, self.totals, self.links = [], [], [], []
        self._in_table = False
        self._section = None
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "div" and ("id", "report-table") in attrs:
            self._in_table = True
        if not self._in_table:
            return
        if tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr" and self._section in ("tbody", "tfoot"):
            (self.rows if self._section == "tbody" else self.totals).append([])
        elif tag in ("th", "td"):
            self._cell = ""
        elif tag == "a" and self._section == "tbody":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        if tag in ("th", "td") and self._cell is not None:
            text = " ".join(self._cell.split())
            if self._section == "thead":
                self.headers.append(text)
            else:
                (self.rows if self._section == "tbody" else self.totals)[-1].append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def logged_in(client, user):
    client.force_login(user)
    return client


class EveryColumn:
    """A logged-in client asking the report for every figure (the page shows the money ones unless
    told), so these tests read the same columns as the CSV."""

    def __init__(self, client):
        self.client = client

    def get(self, path, data=None, **extra):
        if path == URL:
            data = {"columns": "all", **(data or {})}
        return self.client.get(path, data, **extra)


@pytest.fixture
def marketing(client, staff_user_in):
    return EveryColumn(logged_in(client, staff_user_in("Marketing")))


@pytest.fixture
def two_campaigns():
    """Figures worked out by hand in the tests below; all money in USD."""
    advertiser = AdvertiserFactory(name="Acme Solar")
    alpha = CampaignFactory(
        name="Alpha push",
        traffic_source=TrafficSourceFactory(name="PushHouse", kind=TrafficSource.Kind.PUSH),
        offer=OfferFactory(name="Solar quote", advertiser=advertiser),
    )
    beta = CampaignFactory(
        name="Beta native",
        traffic_source=TrafficSourceFactory(name="Taboola", kind=TrafficSource.Kind.NATIVE),
        offer=OfferFactory(name="Solar newsletter", advertiser=advertiser),
    )
    DailyStatFactory(campaign=alpha, impressions=10_000, clicks=100, spend=Decimal("50.00"))
    DailyStatFactory(campaign=beta, impressions=5_000, clicks=60, spend=Decimal("30.00"))
    ClickFactory.create_batch(3, campaign=alpha)
    # Alpha: 2 valid qualified hard leads (one sold for 120), 1 suspect, 1 duplicate.
    LeadFactory(campaign=alpha, status="won", sale_amount=Decimal("120.00"), sale_currency="USD")
    LeadFactory(campaign=alpha)
    LeadFactory(campaign=alpha, validity="suspect")
    LeadFactory(campaign=alpha, is_duplicate=True)
    # Beta: 1 valid soft lead that is not qualified, 1 invalid; from Canada.
    LeadFactory(campaign=beta, lead_type="soft", qualification="disqualified", country="CA")
    LeadFactory(campaign=beta, validity="invalid", country="CA")
    # Outside the default period (the last 30 days): never counted.
    LeadFactory(campaign=alpha, created_at=timezone.now() - datetime.timedelta(days=40))
    return alpha, beta


def figures(row: list[str]) -> dict[str, str]:
    return dict(zip(HEADERS, row[-len(HEADERS) :], strict=True))


def test_marketing_sees_each_campaigns_figures_and_the_totals(marketing, two_campaigns):
    alpha, beta = two_campaigns

    response = marketing.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<title> Campaign report | leadcrm</title>" in page
    table = ReportTable(page)
    assert table.headers == ["Campaign", *HEADERS]
    assert [row[0] for row in table.rows] == ["Alpha push", "Beta native"]
    assert figures(table.rows[0]) == {
        "Impressions": "10,000",
        "Clicks": "100",
        "Tracked clicks": "3",
        "Media spend": "50.00",
        "Cost": "50.00",
        "Margin": "70.00",
        "Lead sales": "0.00",
        "Sold": "0",
        "Avg. price": "—",
        "Commissions": "120.00",
        "Supplier payouts": "0.00",
        "Leads": "4",
        "Valid": "2",
        "Duplicates": "1",
        "Suspect": "1",
        "Invalid": "0",
        "Qualified": "2",
        "Hard": "2",
        "Soft": "0",
        "Converted": "1",
        "Returned": "0",
        "Revenue": "120.00",
        "CPL": "25.00",
        "Cost/qualified": "25.00",
        "Conv. rate": "50.00%",
        "Validity": "50.00%",
        "ROI": "140.00%",
        "ROAS": "2.40x",
        "EPC": "1.2000",
        "Currency": "USD",
    }
    assert figures(table.rows[1]) == {
        "Impressions": "5,000",
        "Clicks": "60",
        "Tracked clicks": "0",
        "Media spend": "30.00",
        "Cost": "30.00",
        "Margin": "-30.00",
        "Lead sales": "0.00",
        "Sold": "0",
        "Avg. price": "—",
        "Commissions": "0.00",
        "Supplier payouts": "0.00",
        "Leads": "2",
        "Valid": "1",
        "Duplicates": "0",
        "Suspect": "0",
        "Invalid": "1",
        "Qualified": "0",
        "Hard": "0",
        "Soft": "1",
        "Converted": "0",
        "Returned": "0",
        "Revenue": "0.00",
        "CPL": "30.00",
        # Nothing qualified: no cost per qualified lead, rather than a zero.
        "Cost/qualified": "—",
        "Conv. rate": "0.00%",
        "Validity": "50.00%",
        "ROI": "-100.00%",
        "ROAS": "0.00x",
        "EPC": "0.0000",
        "Currency": "USD",
    }
    assert len(table.totals) == 1
    assert table.totals[0][0] == "Total"
    assert figures(table.totals[0]) == {
        "Impressions": "15,000",
        "Clicks": "160",
        "Tracked clicks": "3",
        "Media spend": "80.00",
        "Cost": "80.00",
        "Margin": "40.00",
        "Lead sales": "0.00",
        "Sold": "0",
        "Avg. price": "—",
        "Commissions": "120.00",
        "Supplier payouts": "0.00",
        "Leads": "6",
        "Valid": "3",
        "Duplicates": "1",
        "Suspect": "1",
        "Invalid": "1",
        "Qualified": "2",
        "Hard": "2",
        "Soft": "1",
        "Converted": "1",
        "Returned": "0",
        "Revenue": "120.00",
        "CPL": "26.67",
        "Cost/qualified": "40.00",
        "Conv. rate": "33.33%",
        "Validity": "50.00%",
        "ROI": "50.00%",
        "ROAS": "1.50x",
        "EPC": "0.7500",
        "Currency": "USD",
    }
    # Campaign names link to their admin pages; the ids themselves are not columns.
    assert table.links == [
        reverse("admin:campaigns_campaign_change", args=[alpha.pk]),
        reverse("admin:campaigns_campaign_change", args=[beta.pk]),
    ]


def test_managers_may_see_the_report_too(client, staff_user_in, two_campaigns):
    response = logged_in(client, staff_user_in("Managers")).get(URL)
    assert response.status_code == 200
    assert len(ReportTable(response.content.decode()).rows) == 2


def test_two_levels_of_grouping_show_both_and_figures_a_grouping_cannot_know_as_empty(marketing, two_campaigns):
    response = marketing.get(URL, {"group_by": "traffic_source_kind", "then_by": "country"})

    table = ReportTable(response.content.decode())
    assert table.headers[:2] == ["Traffic source kind", "Country"]
    assert [row[:2] for row in table.rows] == [["Native", "CA"], ["Push", "US"]]
    native = figures(table.rows[0])
    assert (native["Leads"], native["Valid"], native["Validity"]) == ("2", "1", "50.00%")
    # Spend is reported per campaign and day, not per country: unknown, not zero.
    assert (native["Media spend"], native["Cost"], native["Impressions"], native["CPL"], native["ROI"]) == (
        "—",
        "—",
        "—",
        "—",
        "—",
    )
    assert (figures(table.rows[1])["Leads"], figures(table.rows[1])["Converted"]) == ("4", "1")
    assert table.totals[0][:2] == ["Total", ""]
    assert figures(table.totals[0])["Leads"] == "6"
    assert figures(table.totals[0])["Media spend"] == "—"


def test_a_filter_narrows_the_rows_and_the_totals(marketing, two_campaigns):
    alpha, _ = two_campaigns

    by_kind = ReportTable(marketing.get(URL, {"traffic_source_kind": "native"}).content.decode())
    by_campaign = ReportTable(marketing.get(URL, {"campaign": [alpha.pk]}).content.decode())
    by_country = ReportTable(marketing.get(URL, {"group_by": "offer", "country": "ca"}).content.decode())

    assert [row[0] for row in by_kind.rows] == ["Beta native"]
    assert figures(by_kind.totals[0])["Media spend"] == "30.00"
    assert [row[0] for row in by_campaign.rows] == ["Alpha push"]
    assert figures(by_campaign.totals[0])["Leads"] == "4"
    assert [row[0] for row in by_country.rows] == ["Solar newsletter"]
    assert figures(by_country.rows[0])["Leads"] == "2"


def test_sorting_by_cpl_puts_rows_without_a_cpl_last_both_ways(marketing, two_campaigns):
    # No valid lead: spend without a CPL.
    gamma = CampaignFactory(name="Gamma display")
    DailyStatFactory(campaign=gamma, spend=Decimal("10.00"))
    LeadFactory(campaign=gamma, validity="invalid")

    descending = ReportTable(marketing.get(URL, {"sort": "-cpl"}).content.decode())
    ascending = ReportTable(marketing.get(URL, {"sort": "cpl"}).content.decode())

    assert [(row[0], figures(row)["CPL"]) for row in descending.rows] == [
        ("Beta native", "30.00"),
        ("Alpha push", "25.00"),
        ("Gamma display", "—"),
    ]
    assert [row[0] for row in ascending.rows] == ["Alpha push", "Beta native", "Gamma display"]
    assert "CPL ▼" in descending.headers
    assert "CPL ▲" in ascending.headers


def test_header_links_keep_the_controls_and_turn_the_sorted_column_around(marketing, two_campaigns):
    page = marketing.get(URL, {"group_by": "offer", "country": "US", "sort": "cpl"}).content.decode()

    assert 'href="?columns=all&amp;group_by=offer&amp;country=US&amp;sort=-cpl' in page
    assert 'href="?columns=all&amp;group_by=offer&amp;country=US&amp;sort=leads' in page
    # The form carries the sort along when the controls change.
    assert '<input type="hidden" name="sort" value="cpl">' in page


def test_an_unknown_sort_column_keeps_the_report_order(marketing, two_campaigns):
    table = ReportTable(marketing.get(URL, {"sort": "-password"}).content.decode())
    assert [row[0] for row in table.rows] == ["Alpha push", "Beta native"]


def _shown_as_plain(text: str, header: str) -> str:
    """A page cell as the CSV writes it: no thousands separators, no % or x sign, empty for unknown."""
    if text == "—":
        return ""
    if header in HEADERS and header != "Currency":
        return text.replace(",", "").removesuffix("%").removesuffix("x")
    return text


def test_csv_is_the_table_shown_with_the_same_rows_order_and_totals(marketing, two_campaigns):
    params = {"group_by": "campaign", "then_by": "country", "sort": "leads"}
    table = ReportTable(marketing.get(URL, params).content.decode())

    response = marketing.get(URL, {**params, "format": "csv"})

    today = timezone.localdate()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="report-{today - datetime.timedelta(days=29)}-{today}.csv"'
    )
    header, *lines = list(csv.reader(io.StringIO(response.content.decode())))
    shown_headers = [label.removesuffix(" ▼").removesuffix(" ▲") for label in table.headers]
    assert header == [
        f"{label} (%)" if label in PERCENT_HEADERS else f"{label} (x)" if label in TIMES_HEADERS else label
        for label in shown_headers
    ]
    shown = [
        [_shown_as_plain(text, label) for text, label in zip(row, shown_headers, strict=True)]
        for row in table.rows + table.totals
    ]
    assert lines == shown
    assert [line[0] for line in lines] == ["Beta native", "Alpha push", "Total"]
    assert lines[1][header.index("Revenue")] == "120.00"
    assert lines[1][header.index("ROI (%)")] == ""  # per country: no spend, so no ROI
    assert lines[-1][header.index("Validity (%)")] == "50.00"


def test_money_in_another_currency_is_listed_apart_not_added_to_revenue(marketing, two_campaigns):
    alpha, _ = two_campaigns
    LeadFactory(campaign=alpha, status="won", sale_amount=Decimal("80.00"), sale_currency="EUR")

    table = ReportTable(marketing.get(URL).content.decode())
    lines = list(csv.reader(io.StringIO(marketing.get(URL, {"format": "csv"}).content.decode())))

    assert table.headers[-1] == "Other currencies"
    assert [row[-1] for row in table.rows] == ["EUR 80.00", "—"]
    assert table.totals[0][-1] == "EUR 80.00"
    assert figures(table.rows[0][:-1])["Revenue"] == "120.00"
    assert [line[-1] for line in lines] == ["Other currencies", "EUR 80.00", "", "EUR 80.00"]


def test_csv_cells_cannot_run_as_spreadsheet_formulas(marketing):
    campaign = CampaignFactory(name='=HYPERLINK("https://evil.example")')
    LeadFactory(campaign=campaign)

    page = marketing.get(URL).content.decode()
    response = marketing.get(URL, {"format": "csv"})

    assert ReportTable(page).rows[0][0] == '=HYPERLINK("https://evil.example")'  # shown as typed
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][0] == '\'=HYPERLINK("https://evil.example")'


@pytest.mark.parametrize(
    "params, message",
    [
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "The end date is before the start date."),
        (
            {"date_from": "2024-01-01", "date_to": "2025-01-01"},
            "Choose a period of at most 366 days; this one has 367.",
        ),
        ({"date_from": "yesterday"}, "Enter a valid date."),
        ({"date_from": "9999-12-01", "date_to": "9999-12-31"}, "Pick a day between 2000-01-01 and 2099-12-31."),
        ({"country": "US, XX"}, "Not ISO country codes: XX."),
        ({"group_by": "campaign", "then_by": "campaign"}, "Choose a second grouping different from the first"),
        ({"group_by": "password"}, "Select a valid choice."),
        ({"campaign": "1 OR 1=1"}, "is not a valid value."),
    ],
)
def test_bad_controls_show_an_error_and_no_table(marketing, two_campaigns, params, message):
    response = marketing.get(URL, params)
    csv_response = marketing.get(URL, {**params, "format": "csv"})

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert 'class="errornote lc-error"' in page
    assert 'id="report-table"' not in page
    assert "Download CSV" not in page
    # No file of a report that was not made: the page with the error instead.
    assert csv_response["Content-Type"].startswith("text/html")


def test_a_whole_leap_year_is_allowed(marketing, two_campaigns):
    response = marketing.get(URL, {"date_from": "2024-01-01", "date_to": "2024-12-31"})
    assert 'id="report-table"' in response.content.decode()
    assert "No leads, clicks or spend in this period" in response.content.decode()


def test_sales_may_not_see_the_report(client, staff_user_in, two_campaigns):
    client = logged_in(client, staff_user_in("Sales"))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def _queries(client, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, params).status_code == 200
    return len(queries)


@pytest.mark.parametrize("params", [{}, {"then_by": "offer", "sort": "-cpl"}])
def test_the_page_costs_the_same_queries_whatever_the_number_of_campaigns(
    marketing, two_campaigns, django_assert_max_num_queries, params
):
    alpha, _ = two_campaigns
    filtered = {
        **params,
        "campaign": [alpha.pk],
        "offer": [alpha.offer_id],
        "traffic_source": [alpha.traffic_source_id],
    }
    few = [_queries(marketing, params), _queries(marketing, filtered)]
    for _ in range(8):
        campaign = CampaignFactory()
        DailyStatFactory(campaign=campaign)
        ClickFactory(campaign=campaign)
        LeadFactory(campaign=campaign)

    # Session and user, the user's permissions (2), the report (at most 4: leads, sales in other
    # currencies, stats, clicks) and one per filter list shown (4); a chosen filter checks its ids (3).
    with django_assert_max_num_queries(12):
        marketing.get(URL, params)
    with django_assert_max_num_queries(15):
        marketing.get(URL, filtered)
    with django_assert_max_num_queries(8):  # no form to draw
        marketing.get(URL, {**params, "format": "csv"})
    assert [_queries(marketing, params), _queries(marketing, filtered)] == few


def test_a_long_report_shows_a_page_of_rows_with_totals_over_all_and_the_csv_has_every_row(
    marketing, two_campaigns, monkeypatch
):
    monkeypatch.setattr("reporting.report_admin.ROWS_PER_PAGE", 1)

    first = marketing.get(URL)
    second = marketing.get(URL, {"page": "2"})
    lines = list(csv.reader(io.StringIO(marketing.get(URL, {"format": "csv", "page": "2"}).content.decode())))

    assert [row[0] for row in ReportTable(first.content.decode()).rows] == ["Alpha push"]
    assert [row[0] for row in ReportTable(second.content.decode()).rows] == ["Beta native"]
    assert "Rows 1\u20131 of 2" in first.content.decode() and "Next \u203a" in first.content.decode()
    # Totals over both campaigns on every page: 4 + 2 leads.
    assert figures(ReportTable(second.content.decode()).totals[0])["Leads"] == "6"
    assert [line[0] for line in lines[1:]] == ["Alpha push", "Beta native", "Total"]


def test_the_page_shows_the_money_columns_unless_asked_and_the_csv_every_figure(client, staff_user_in, two_campaigns):
    shown = logged_in(client, staff_user_in("Marketing"))

    page = ReportTable(shown.get(URL).content.decode())
    quality = ReportTable(shown.get(URL, {"columns": "quality"}).content.decode())
    lines = list(csv.reader(io.StringIO(shown.get(URL, {"format": "csv"}).content.decode())))

    assert page.headers == ["Campaign", "Leads", "Valid", "Cost", "Revenue", "Margin", "ROI", "ROAS", "CPL", "EPC"]
    assert quality.headers[:4] == ["Campaign", "Leads", "Valid", "Qualified"] and "Revenue" not in quality.headers
    assert lines[0][0] == "Campaign" and len(lines[0]) == 1 + len(HEADERS)

"""The report page in the admin: the report selector with its controls, sortable columns and a CSV
of exactly the table shown (same rows, columns, order and totals)."""

import csv
import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from campaigns.models import TrafficSource
from campaigns.visitor import DeviceType
from leadcrm.spreadsheets import spreadsheet_safe

from .report_forms import ReportForm
from .selectors import DIMENSIONS, report, report_totals

ROWS_PER_PAGE = 100
VIEW_PERMISSION = "campaigns.view_dailystat"  # spend is the company's: whoever may see daily stats


@dataclass(frozen=True)
class Column:
    """One column of the table and of the CSV: where its value is in a row and how it reads."""

    name: str  # the `sort` parameter
    label: str
    key: str  # the row key it shows
    kind: str  # text, count, money, percent, times (ROAS: 1.60x) or amounts
    groups: bool = False  # a grouping's column: empty in the totals
    choices: dict | None = None  # code -> label, for dimensions stored as codes
    link_key: str | None = None  # a campaign's id, for the link to its admin page
    places: int = 2  # decimals of money (EPC is often a fraction of a cent)

    @property
    def numeric(self) -> bool:
        return self.kind in ("count", "money", "percent", "times")

    @property
    def csv_label(self) -> str:
        return {"percent": f"{self.label} (%)", "times": f"{self.label} (x)"}.get(self.kind, self.label)

    def value(self, row: dict):
        """The row's value, None when the report does not know it (spend per country, a missing sub id)."""
        value = row.get(self.key)
        if value in ("", {}):
            return None
        if self.choices and value in self.choices:
            return self.choices[value]
        return value

    def text(self, row: dict) -> str:
        """As shown on the page: numbers grouped by thousands, rates as percentages."""
        value = self.value(row)
        if value is None:
            return ""
        if self.kind == "count":
            return f"{value:,}"
        if self.kind == "money":
            return f"{self._rounded(value):,}"
        if self.kind == "percent":
            return f"{_percent(value):,}%"
        if self.kind == "times":
            return f"{self._rounded(value):,}x"
        if self.kind == "amounts":
            return _amounts(value)
        return value.isoformat() if isinstance(value, datetime.date) else str(value)

    def plain(self, row: dict) -> str:
        """As written to the CSV: the same figures without grouping or %, names made spreadsheet-safe."""
        value = self.value(row)
        if value is None:
            return ""
        if self.kind == "percent":
            return str(_percent(value))
        if self.kind in ("money", "times"):
            return str(self._rounded(value))
        if self.kind == "amounts":
            return _amounts(value)
        if isinstance(value, datetime.date):
            return value.isoformat()
        return spreadsheet_safe(value) if isinstance(value, str) else str(value)

    def _rounded(self, value: Decimal) -> Decimal:
        return value.quantize(Decimal(1).scaleb(-self.places))

    def sort_value(self, row: dict):
        value = self.value(row)
        if self.kind == "amounts" and value is not None:
            return _amounts(value)
        return value.casefold() if isinstance(value, str) else value


def _amounts(amounts: dict) -> str:
    return ", ".join(f"{currency} {amount}" for currency, amount in sorted(amounts.items()))


def _percent(value: Decimal) -> Decimal:
    return (value * 100).quantize(Decimal("0.01"))


CHOICES = {
    "traffic_source_kind": dict(TrafficSource.Kind.choices),
    "device_type": dict(DeviceType.choices),
}

# Money first, so it stays in view on a laptop screen; the lead judgements and traffic follow.
METRIC_COLUMNS = [
    Column("leads", "Leads", "leads", "count"),
    Column("valid_leads", "Valid", "valid_leads", "count"),
    Column("revenue", "Revenue", "revenue", "money"),
    Column("cost", "Cost", "cost", "money"),
    Column("margin", "Margin", "margin", "money"),
    Column("roi", "ROI", "roi", "percent"),
    Column("roas", "ROAS", "roas", "times"),
    Column("cpl", "CPL", "cpl", "money"),
    Column("epc", "EPC", "epc", "money", places=4),
    Column("lead_revenue", "Lead sales", "lead_revenue", "money"),
    Column("sold_leads", "Sold", "sold_leads", "count"),
    Column("average_sale_price", "Avg. price", "average_sale_price", "money"),
    Column("sale_revenue", "Commissions", "sale_revenue", "money"),
    Column("media_spend", "Media spend", "media_spend", "money"),
    Column("supplier_cost", "Supplier payouts", "supplier_cost", "money"),
    Column("cost_per_qualified", "Cost/qualified", "cost_per_qualified", "money"),
    Column("qualified", "Qualified", "qualified", "count"),
    Column("converted", "Converted", "converted", "count"),
    Column("returned", "Returned", "returned", "count"),
    Column("conversion_rate", "Conv. rate", "conversion_rate", "percent"),
    Column("validity_rate", "Validity", "validity_rate", "percent"),
    Column("duplicates", "Duplicates", "duplicates", "count"),
    Column("suspect", "Suspect", "suspect", "count"),
    Column("invalid", "Invalid", "invalid", "count"),
    Column("hard_leads", "Hard", "hard_leads", "count"),
    Column("soft_leads", "Soft", "soft_leads", "count"),
    Column("impressions", "Impressions", "impressions", "count"),
    Column("clicks", "Clicks", "clicks", "count"),
    Column("tracked_clicks", "Tracked clicks", "tracked_clicks", "count"),
    Column("currency", "Currency", "currency", "text"),
]
# The page shows one set of columns at a time, so the figures that matter fit a laptop's screen; the
# CSV always has every figure.
COLUMN_SETS = {
    "money": ("leads", "valid_leads", "cost", "revenue", "margin", "roi", "roas", "cpl", "epc"),
    "sales": (
        "leads",
        "lead_revenue",
        "sold_leads",
        "average_sale_price",
        "sale_revenue",
        "media_spend",
        "supplier_cost",
        "cost_per_qualified",
        "currency",
    ),
    "quality": (
        "leads",
        "valid_leads",
        "qualified",
        "converted",
        "returned",
        "conversion_rate",
        "validity_rate",
        "duplicates",
        "suspect",
        "invalid",
        "hard_leads",
        "soft_leads",
    ),
    "traffic": ("impressions", "clicks", "tracked_clicks", "leads", "conversion_rate", "epc", "cpl"),
    "all": tuple(column.name for column in METRIC_COLUMNS),
}
# Money booked in another currency than the offer's is never converted; shown apart when there is any.
OTHER_CURRENCIES = Column("money_other_currencies", "Other currencies", "money_other_currencies", "amounts")


def group_column(name: str) -> Column:
    """The column people read for a grouping: a name rather than an id (a campaign's links to its page)."""
    label = DIMENSIONS[name].label
    if name == "campaign":
        return Column(name, label, "campaign_name", "text", groups=True, link_key="campaign_id")
    return Column(name, label, name, "text", groups=True, choices=CHOICES.get(name))


def table_columns(group_by: list[str], rows: list[dict], column_set: str = "all") -> list[Column]:
    by_name = {column.name: column for column in METRIC_COLUMNS}
    columns = [group_column(name) for name in group_by] + [by_name[name] for name in COLUMN_SETS[column_set]]
    if any(row.get(OTHER_CURRENCIES.key) for row in rows):
        columns.append(OTHER_CURRENCIES)
    return columns


def parse_sort(value: str, columns: list[Column]) -> tuple[Column | None, bool]:
    """The column to sort by and whether descending; (None, False) keeps the report's own order."""
    descending = value.startswith("-")
    name = value[1:] if descending else value
    return next(((column, descending) for column in columns if column.name == name), (None, False))


def sorted_rows(rows: list[dict], column: Column | None, descending: bool) -> list[dict]:
    """Rows by one column; rows without a value (no spend, no CPL) come last either way."""
    if column is None:
        return rows  # the report's order: by the group columns
    known = [row for row in rows if column.sort_value(row) is not None]
    unknown = [row for row in rows if column.sort_value(row) is None]
    return sorted(known, key=column.sort_value, reverse=descending) + unknown


def report_view(request):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    form = ReportForm.with_defaults(request.GET)
    context = {**admin.site.each_context(request), "title": "Campaign report", "form": form}
    if not form.is_valid():
        return TemplateResponse(request, "admin/reporting/report/report.html", context)

    date_from, date_to = form.cleaned_data["date_from"], form.cleaned_data["date_to"]
    group_by = form.group_by_names()
    rows = report(
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        filters=form.selector_filters(),
        include_money=True,
    )
    totals = report_totals(rows)
    every_column = table_columns(group_by, rows)
    columns = table_columns(group_by, rows, form.cleaned_data["columns"])
    sort_column, descending = parse_sort(request.GET.get("sort", ""), every_column)
    rows = sorted_rows(rows, sort_column, descending)

    if request.GET.get("format") == "csv":
        return _csv_response(every_column, rows, totals, filename=f"report-{date_from}-{date_to}.csv")

    sort = ("-" if descending else "") + sort_column.name if sort_column else ""
    # A page of rows at a time (sorted over all of them); the totals and the CSV cover every row.
    page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    context.update(
        headers=[_header(request, column, sort_column, descending) for column in columns],
        rows=[_cells(columns, row) for row in page.object_list],
        page=page,
        row_count=len(rows),
        previous_url=_url_with(request, page=str(page.previous_page_number())) if page.has_previous() else "",
        next_url=_url_with(request, page=str(page.next_page_number())) if page.has_next() else "",
        totals=[
            [
                {"text": text, "numeric": column.numeric, "group": column.groups}
                for text, column in zip(cells, columns, strict=True)
            ]
            for cells in (_total_cells(columns, total, Column.text) for total in totals)
        ],
        sort=sort,
        csv_url=_url_with(request, format="csv"),
        date_from=date_from,
        date_to=date_to,
    )
    return TemplateResponse(request, "admin/reporting/report/report.html", context)


def _cells(columns: list[Column], row: dict) -> SafeString:
    """A row's <td> cells, built here rather than by the template (a page is thousands of cells)."""
    cells = []
    for column in columns:
        text: str = escape(column.text(row) or "—")
        if column.link_key and row.get(column.link_key) is not None:
            text = f'<a href="{escape(_campaign_url(row[column.link_key]))}">{text}</a>'
        cells.append(f'<td class="num">{text}</td>' if column.numeric else f"<td>{text}</td>")
    return mark_safe("".join(cells))  # noqa: S308  every value in it was escaped


def _campaign_url(campaign_id: int) -> str:
    return reverse("admin:campaigns_campaign_change", args=[campaign_id])


def _total_cells(columns: list[Column], total: dict, render) -> list:
    """A totals row: "Total" under the first grouping, the other groupings empty, then the figures."""
    return [
        "Total" if index == 0 else "" if column.groups else render(column, total)
        for index, column in enumerate(columns)
    ]


def _header(request, column: Column, sort_column: Column | None, descending: bool) -> dict:
    current = column is sort_column
    # A second click on the sorted column turns it around; the first sorts ascending.
    next_sort = f"-{column.name}" if current and not descending else column.name
    return {
        "label": column.label,
        "numeric": column.numeric,
        "url": _url_with(request, sort=next_sort, page="1"),
        "sorted": ("descending" if descending else "ascending") if current else "",
    }


def _url_with(request, **params: str) -> str:
    query = request.GET.copy()
    query.pop("format", None)
    for name, value in params.items():
        query[name] = value
    return f"?{query.urlencode()}"


def _csv_response(columns: list[Column], rows: list[dict], totals: list[dict], *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([column.csv_label for column in columns])
    writer.writerows([column.plain(row) for column in columns] for row in rows)
    writer.writerows(_total_cells(columns, total, Column.plain) for total in totals)
    return response

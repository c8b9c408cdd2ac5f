"""The one report: lead, traffic and money metrics for any period, grouping and filters.

Four tables feed it, each aggregated in the database by the same group columns and merged by
key: leads (counted by the day they were captured), the money ledger (sales, returns, sale
commissions, supplier payouts and media spend, each on the day it counts for: a lead's money on
the lead's capture day, spend on its own day), daily stats (impressions, reported clicks) and
tracked clicks. Spend and traffic only exist at some grains: spend is known per campaign and
day but not per country, so a grouping or filter that a table cannot express leaves its figures
empty (None) rather than wrong. A report costs at most four queries, whatever the grouping.
"""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.db.models import (
    Case,
    Count,
    DateField,
    Expression,
    F,
    Max,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.fields.json import KT, KeyTextTransform
from django.db.models.functions import Coalesce, NullIf, TruncDate, TruncWeek
from django.utils import timezone

from campaigns.models import SUB_ID_PARAMS, Click, DailyStat
from leads.models import BILLABLE, Lead, LedgerEntry

from ..models import ClickFold, DailyRollup

LEADS, LEDGER, STATS, CLICKS, ROLLUPS = "leads", "ledger", "stats", "clicks", "rollups"
# The days a report may cover: nothing was tracked before 2000, and Python's dates end in 9999 (the
# end of a period is the start of the day after it). Forms and the API check this before asking.
EARLIEST_DAY, LATEST_DAY = datetime.date(2000, 1, 1), datetime.date(2099, 12, 31)

Row = dict[str, Any]  # a report row, or an aggregate's row: column or metric name -> value
Key = tuple[Any, ...]  # a row's group key: its key columns' values in order
_QuerySet = TypeVar("_QuerySet", bound=QuerySet[Any])


@dataclass(frozen=True)
class Dimension:
    """A way to group and filter: its columns in the rows and how each table reaches them."""

    label: str
    columns: dict[str, dict[str, object]]  # table -> {row column: field path or expression}
    filter_paths: dict[str, str] = field(default_factory=dict)  # table -> path compared with the filter values
    # Columns that name a group someone reads (a campaign's slug and name) rather than key it (its id):
    # taken with MAX() instead of grouped on, so the database groups by ids alone. Grouping by text
    # too made PostgreSQL misjudge the number of groups and sort on disk (bench/bench_reports.py).
    label_columns: frozenset[str] = frozenset()

    def reaches(self, table: str) -> bool:
        return table in self.columns


def _same_path(**paths: dict[str, str]) -> dict[str, dict[str, object]]:
    return {table: {column: F(path) for column, path in columns.items()} for table, columns in paths.items()}


def _related(
    name: str,
    *,
    leads: str,
    ledger: str,
    stats: str | None,
    clicks: str | None,
    rollups: str | None,
    label_field: str = "name",
    key: str = "id",
) -> Dimension:
    """A dimension that is a related row: its id for filters, its label for people."""
    tables = {LEADS: leads, LEDGER: ledger, STATS: stats, CLICKS: clicks, ROLLUPS: rollups}
    tables = {table: prefix for table, prefix in tables.items() if prefix is not None}
    return Dimension(
        label=name.replace("_", " ").capitalize(),
        columns=_same_path(
            **{
                table: {f"{name}_{key}": f"{prefix}__{key}", name: f"{prefix}__{label_field}"}
                for table, prefix in tables.items()
            }
        ),
        filter_paths={table: f"{prefix}__{key}" for table, prefix in tables.items()},
        label_columns=frozenset({name}),
    )


def _plain(name: str, label: str, **paths: str) -> Dimension:
    return Dimension(label=label, columns=_same_path(**{t: {name: p} for t, p in paths.items()}), filter_paths=paths)


def _sub_id(name: str) -> Dimension:
    # Placements, zones and creatives live in the sub ids a source passes on its click URL.
    path = f"sub_ids__{name}"
    # An empty id and a missing one are the same: traffic without a placement.
    placement = NullIf(KT(path), Value(""), output_field=TextField())
    return Dimension(
        label=name.capitalize() if not name.startswith("sub") else name,
        columns={
            LEADS: {name: placement},
            # The ledger reaches a lead's sub ids through its lead (spend has none: it is left out).
            LEDGER: {name: NullIf(KeyTextTransform(name, "lead__sub_ids"), Value(""), output_field=TextField())},
            CLICKS: {name: placement},
        },
        filter_paths={LEADS: path, LEDGER: f"lead__{path}", CLICKS: path},
    )


DIMENSIONS: dict[str, Dimension] = {
    "campaign": Dimension(
        label="Campaign",
        # Keyed by slug (what the API and tracking links use), with the name and id for people and links.
        columns=_same_path(
            **{
                table: {"campaign": "campaign__slug", "campaign_name": "campaign__name", "campaign_id": "campaign_id"}
                for table in (LEADS, LEDGER, STATS, CLICKS, ROLLUPS)
            }
        ),
        filter_paths=dict.fromkeys((LEADS, LEDGER, STATS, CLICKS, ROLLUPS), "campaign_id"),
        label_columns=frozenset({"campaign", "campaign_name"}),
    ),
    "traffic_source_kind": _plain(
        "traffic_source_kind",
        "Traffic source kind",
        leads="traffic_source__kind",
        ledger="traffic_source__kind",
        stats="traffic_source__kind",
        clicks="traffic_source__kind",
        rollups="traffic_source__kind",
    ),
    "traffic_source": _related(
        "traffic_source",
        leads="traffic_source",
        ledger="traffic_source",
        stats="traffic_source",
        clicks="traffic_source",
        rollups="traffic_source",
    ),
    # By id: offer names repeat across advertisers.
    "offer": _related("offer", leads="offer", ledger="offer", stats="offer", clicks="offer", rollups="offer"),
    "advertiser": _related(
        "advertiser",
        leads="offer__advertiser",
        ledger="offer__advertiser",
        stats="offer__advertiser",
        clicks="offer__advertiser",
        rollups="offer__advertiser",
    ),
    "day": Dimension(
        label="Day",
        columns={
            LEADS: {"day": TruncDate("created_at")},
            LEDGER: {"day": F("day")},
            STATS: {"day": F("date")},
            CLICKS: {"day": TruncDate("created_at")},
            ROLLUPS: {"day": F("day")},
        },
    ),
    "week": Dimension(
        label="Week (from Monday)",
        columns={
            LEADS: {"week": TruncWeek("created_at", output_field=DateField())},
            LEDGER: {"week": TruncWeek("day", output_field=DateField())},
            STATS: {"week": TruncWeek("date", output_field=DateField())},
            CLICKS: {"week": TruncWeek("created_at", output_field=DateField())},
            ROLLUPS: {"week": TruncWeek("day", output_field=DateField())},
        },
    ),
    "country": _plain(
        "country", "Country", leads="country", ledger="lead__country", clicks="country", rollups="country"
    ),
    "device_type": _plain(
        "device_type",
        "Device type",
        leads="device_type",
        ledger="lead__device_type",
        clicks="device_type",
        rollups="device_type",
    ),
    "landing_page": _related(
        "landing_page", leads="landing_page", ledger="lead__landing_page", stats=None, clicks=None, rollups=None
    ),
    **{name: _sub_id(name) for name in SUB_ID_PARAMS},
}
GROUPINGS = tuple(DIMENSIONS)
PLACEMENT_GROUPINGS = SUB_ID_PARAMS

COUNT_METRICS = (
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
)
TRAFFIC_METRICS = ("impressions", "clicks", "tracked_clicks")

# The lead counts, as every report counts them (judgements among billable leads; returns among all).
LEAD_AGGREGATES = {
    "leads": Count("*"),
    "valid_leads": Count("pk", filter=BILLABLE),
    "duplicates": Count("pk", filter=Q(is_duplicate=True)),
    "suspect": Count("pk", filter=Q(validity="suspect", is_duplicate=False)),
    "invalid": Count("pk", filter=Q(validity="invalid", is_duplicate=False)),
    "qualified": Count("pk", filter=BILLABLE & Q(qualification="qualified")),
    "hard_leads": Count("pk", filter=BILLABLE & Q(lead_type="hard")),
    "soft_leads": Count("pk", filter=BILLABLE & Q(lead_type="soft")),
    # Converted valid leads, so the conversion rate (converted / valid) stays a rate.
    "converted": Count("pk", filter=BILLABLE & Q(status="won")),
    "returned": Count("pk", filter=Q(status="returned")),
}
# Sums of ledger entries, each in the row's currency: what leads were sold for (net of returns), what
# sales earned in commission (net of reversals), media spend, and what suppliers earned (net).
MONEY_SUMS = ("lead_revenue", "sale_revenue", "media_spend", "supplier_cost")
K = LedgerEntry.Kind
MONEY_KINDS = {
    "lead_revenue": (K.LEAD_SOLD, K.LEAD_RETURNED),
    "sale_revenue": (K.SALE_COMMISSION, K.SALE_REVERSED),
    "media_spend": (K.MEDIA_SPEND,),
    "supplier_cost": (K.PAYOUT_EARNED, K.PAYOUT_REVERSED),
}
COST_SUMS = ("media_spend", "supplier_cost")  # booked negative in the ledger, reported as positive costs
ROLLUP_COUNTS = (*COUNT_METRICS, "tracked_clicks", "entries", "sold_leads")
ROLLUP_MONEY = MONEY_SUMS
PER_VISITOR = ("country", "device_type")  # the dimensions only detail rollups keep


def group_columns(group_by: list[str]) -> list[str]:
    """The row columns that name a group, in order (e.g. offer_id and offer for "offer")."""
    return [column for name in group_by for column in DIMENSIONS[name].columns[LEADS]]


RATE, CENTS = Decimal("0.0001"), Decimal("0.01")


def _ratio(
    numerator: Decimal | int | None, denominator: Decimal | int | None, places: Decimal = RATE
) -> Decimal | None:
    """A rate or a money ratio; None (shown empty) when the denominator is zero or unknown."""
    if numerator is None or not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places)


def key_columns(group_by: list[str]) -> list[str]:
    """The group columns that key a row (ids, codes, dates), without the labels read from them."""
    return [
        column
        for name in group_by
        for column in DIMENSIONS[name].columns[LEADS]
        if column not in DIMENSIONS[name].label_columns
    ]


def _group_columns(
    table: str, group_by: list[str], with_currency: bool, extra_keys: Mapping[str, Combinable] | None
) -> tuple[dict[str, object], dict[str, object]]:
    """The group columns of a table's aggregate: (keys grouped on, labels taken with MAX())."""
    keys: dict[str, object] = {}
    labels: dict[str, object] = {}
    for name in group_by:
        dimension = DIMENSIONS[name]
        for column, expr in dimension.columns[table].items():
            (labels if column in dimension.label_columns else keys)[f"g_{column}"] = expr
    if with_currency:
        keys["g_currency"] = F("offer__currency")
    keys.update(extra_keys or {})
    return keys, labels


def _grouped(
    queryset: QuerySet[Any],
    table: str,
    group_by: list[str],
    with_currency: bool,
    aggregates: Mapping[str, Combinable],
    extra_keys: Mapping[str, Combinable] | None = None,
    *,
    also: tuple[QuerySet[Any], str, Mapping[str, Combinable], Mapping[str, Combinable]] | None = None,
) -> list[Row]:
    """One aggregate row per group. `also` (a queryset, its table, aggregates of the same names and
    extra keys) adds another table's rows of the same columns in the same statement (UNION ALL), so
    both are read from one snapshot; a group may then come back twice (see _merged)."""
    keys, labels = _group_columns(table, group_by, with_currency, extra_keys)
    aggregates = {**aggregates, **{column: Max(expr) for column, expr in labels.items()}}
    if not keys:
        # .values() with nothing in it would group by every field of the table.
        return [queryset.aggregate(**aggregates)]
    grouped = queryset.order_by().values(**keys).annotate(**aggregates)
    if also is None:
        return list(grouped)
    other, other_table, other_aggregates, other_extra_keys = also
    other_keys, other_labels = _group_columns(other_table, group_by, with_currency, other_extra_keys)
    other_aggregates = {**other_aggregates, **{column: Max(expr) for column, expr in other_labels.items()}}
    if list(other_keys) != list(keys) or list(other_aggregates) != list(aggregates):
        raise ValueError("A UNION needs the same columns in the same order on both sides")
    return list(grouped.union(other.order_by().values(**other_keys).annotate(**other_aggregates), all=True))


def _merged(rows: list[Row], *, summed: Iterable[str]) -> list[Row]:
    """Rows of one group (equal in every column but the sums) added up into one."""
    summed = frozenset(summed)
    merged: dict[Key, Row] = {}
    for row in rows:
        group = tuple((name, row[name]) for name in sorted(row) if name not in summed)
        into = merged.get(group)
        if into is None:
            merged[group] = dict(row)
            continue
        for name in summed:
            if row[name] is not None:
                into[name] = row[name] if into[name] is None else into[name] + row[name]
    return list(merged.values())


def _key(row: Row, columns: list[str]) -> Key:
    return tuple([row.get(_GROUP_NAMES[column]) for column in columns])


def _labels(row: Row, columns: list[str]) -> Row:
    return {column: row[_GROUP_NAMES[column]] for column in columns}


class _GroupNames(dict[str, str]):
    """column -> "g_column", the name a group column has in an aggregate's rows (made once per name)."""

    def __missing__(self, column: str) -> str:
        self[column] = name = f"g_{column}"
        return name


_GROUP_NAMES = _GroupNames()


def _filtered(queryset: _QuerySet, table: str, filters: dict[str, list[Any]]) -> _QuerySet:
    for name, values in filters.items():
        queryset = queryset.filter(**{f"{DIMENSIONS[name].filter_paths[table]}__in": values})
    return queryset


def _day_bounds(date_from: datetime.date, date_to: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    # A range on the column itself (not on its date) so the created_at indexes serve it.
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    return start, end


def report(
    *,
    date_from: datetime.date,
    date_to: datetime.date,
    group_by: list[str],
    filters: dict[str, list[Any]] | None = None,
    leads: QuerySet[Lead] | None = None,
    include_money: bool = True,
    from_raw: bool = False,
) -> list[Row]:
    """One row per group, sorted by the group columns; money rows never mix currencies.

    Read from the daily rollups where they keep every dimension asked for (all but landing pages and
    sub ids) and the caller sees every lead; from the raw tables otherwise, or with `from_raw` (tests
    and benchmarks compare the two).

    `filters` maps a dimension name to the values kept (ids for related rows, codes otherwise).
    `leads` narrows the leads counted (a supplier's own); test leads never count. Without
    money (partners), traffic and money figures are left out: they are the company's.

    Metrics: counts of leads by judgement (hard/soft, qualified and converted among billable
    leads); traffic; and money from the ledger, in the row's currency (the offer's; money booked in
    another currency is listed apart in `money_other_currencies`, never converted):
    lead_revenue = leads sold - returns, sale_revenue = sale commissions - reversals,
    revenue = lead_revenue + sale_revenue, media_spend, supplier_cost (payouts earned - reversed),
    cost = media_spend + supplier_cost, margin = revenue - cost, sold_leads (net of returns),
    average_sale_price = lead_revenue / sold_leads, CPL = cost / valid, cost per qualified,
    ROI = margin / cost, ROAS = revenue / cost, EPC = revenue / clicks (the source's reported
    clicks, or our tracked clicks where it reported none). Conversion = converted / valid,
    validity = valid / leads.
    """
    for day in (date_from, date_to):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValueError(f"Report days lie between {EARLIEST_DAY} and {LATEST_DAY}, not {day}")
    unknown = [name for name in group_by if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"Unknown report grouping: {', '.join(unknown)}")
    # Day and week are chosen with the dates, not filtered on.
    unknown = [name for name in filters or {} if name not in DIMENSIONS or not DIMENSIONS[name].filter_paths]
    if unknown:
        raise ValueError(f"Unknown report filter: {', '.join(unknown)}")
    filters = {name: list(values) for name, values in (filters or {}).items() if values}
    used = [DIMENSIONS[name] for name in [*group_by, *filters]]
    columns = group_columns(group_by) + (["currency"] if include_money else [])
    keys = key_columns(group_by) + (["currency"] if include_money else [])
    labels = [column for column in columns if column not in keys]

    # Spend exists per campaign and day; a supplier's or sales rep's own leads carry none.
    stats_known = include_money and leads is None and all(dimension.reaches(STATS) for dimension in used)
    clicks_known = include_money and all(dimension.reaches(CLICKS) for dimension in used)
    if not from_raw and leads is None and all(dimension.reaches(ROLLUPS) for dimension in used):
        rows, other_currencies = _rows_from_rollups(
            date_from, date_to, group_by, filters, keys, labels, include_money, stats_known, clicks_known
        )
    else:
        rows, other_currencies = _rows_from_raw(
            date_from, date_to, group_by, filters, keys, labels, leads, include_money, stats_known, clicks_known
        )

    report_rows = []
    for key, row in sorted(rows.items(), key=lambda item: _sort_key(tuple(item[1][c] for c in columns))):
        entry = {column: row[column] for column in columns}
        entry.update({name: row.get(name, 0) for name in COUNT_METRICS})
        if include_money:
            entry.update(
                impressions=row.get("impressions", 0) if stats_known else None,
                clicks=row.get("clicks", 0) if stats_known else None,
                tracked_clicks=row.get("tracked_clicks", 0) if clicks_known else None,
                sold_leads=row.get("sold_leads", 0),
            )
            for name in MONEY_SUMS:
                # Kept to the fraction of a cent it was booked with (spend), so totals add up exactly;
                # rounded where it is shown.
                amount = row.get(name) or Decimal("0")
                entry[name] = -amount if name in COST_SUMS else amount
            if not stats_known:
                entry["media_spend"] = None
            if key in other_currencies:
                entry["money_other_currencies"] = other_currencies[key]
        _add_ratios(entry)
        report_rows.append(entry)
    return report_rows


def _rows_from_raw(
    date_from: datetime.date,
    date_to: datetime.date,
    group_by: list[str],
    filters: dict[str, list[Any]],
    keys: list[str],
    labels: list[str],
    leads: QuerySet[Lead] | None,
    include_money: bool,
    stats_known: bool,
    clicks_known: bool,
) -> tuple[dict[Key, Row], dict[Key, Row]]:
    """The report's sums from the raw tables: leads, the ledger, daily stats and tracked clicks (four
    queries). For groupings rollups do not keep (landing pages, sub ids) and for a caller's own leads."""
    start, end = _day_bounds(date_from, date_to)
    lead_rows = (Lead.objects.all() if leads is None else leads).filter(
        is_test=False, created_at__gte=start, created_at__lt=end
    )
    lead_rows = _filtered(lead_rows, LEADS, filters)
    rows: dict[Key, Row] = {}

    def row_for(found: Row) -> Row:
        key = _key(found, keys)
        if key not in rows:
            rows[key] = {**dict(zip(keys, key, strict=True)), **_labels(found, labels)}
        return rows[key]

    lead_aggregates = LEAD_AGGREGATES
    for found in _grouped(lead_rows, LEADS, group_by, include_money, lead_aggregates):
        if found["leads"]:
            row_for(found).update({name: found[name] for name in lead_aggregates})

    other_currencies: dict[Key, Row] = {}
    if include_money:
        entries = LedgerEntry.objects.filter(day__gte=date_from, day__lte=date_to)
        if leads is not None:
            entries = entries.filter(lead__in=leads)
        kinds = [kind for name in MONEY_SUMS if name != "media_spend" or stats_known for kind in MONEY_KINDS[name]]
        entries = _filtered(entries.filter(kind__in=kinds), LEDGER, filters)
        sums: dict[str, Expression] = {name: Sum("amount", filter=Q(kind__in=MONEY_KINDS[name])) for name in MONEY_SUMS}
        # Sold net of returned: a returned sale is no longer one.
        sums["sold_leads"] = Count("pk", filter=Q(kind=K.LEAD_SOLD)) - Count("pk", filter=Q(kind=K.LEAD_RETURNED))
        extra = {"entry_currency": F("currency")}
        for found in _grouped(entries, LEDGER, group_by, True, sums, extra_keys=extra):
            if found["entry_currency"] == found["g_currency"]:
                row = row_for(found)
                row.update({name: found[name] for name in sums})
            else:
                # Money in another currency than the offer's (a sale reported in euros on a dollar
                # offer): listed apart, never converted or added in.
                amounts = other_currencies.setdefault(_key(found, keys), {})
                net = sum((found[name] or Decimal("0") for name in MONEY_SUMS), Decimal("0"))
                amounts[found["entry_currency"]] = net.quantize(Decimal("0.01"))
    if stats_known:
        stats = _filtered(DailyStat.objects.filter(date__gte=date_from, date__lte=date_to), STATS, filters)
        totals = {"impressions": Sum("impressions"), "clicks": Sum("clicks")}
        for found in _grouped(stats, STATS, group_by, True, totals):
            if found["impressions"] is not None:
                row_for(found).update({name: found[name] for name in totals})
    if clicks_known:
        clicks = _filtered(Click.objects.filter(created_at__gte=start, created_at__lt=end), CLICKS, filters)
        # COUNT(*), so PostgreSQL may answer from the campaign/time index alone.
        for found in _grouped(clicks, CLICKS, group_by, True, {"tracked_clicks": Count("*")}):
            if found["tracked_clicks"]:
                row_for(found)["tracked_clicks"] = found["tracked_clicks"]

    return rows, other_currencies


def _rows_from_rollups(
    date_from: datetime.date,
    date_to: datetime.date,
    group_by: list[str],
    filters: dict[str, list[Any]],
    keys: list[str],
    labels: list[str],
    include_money: bool,
    stats_known: bool,
    clicks_known: bool,
) -> tuple[dict[Key, Row], dict[Key, Row]]:
    """The same sums from the daily rollups, in one query. A bucket shows when it has leads, ledger
    entries in the offer's currency, a day of stats or tracked clicks, as the raw report shows it."""
    buckets = _filtered(DailyRollup.objects.filter(day__gte=date_from, day__lte=date_to), ROLLUPS, filters)
    grain = DailyRollup.Grain
    if any(name in PER_VISITOR for name in (*group_by, *filters)):
        buckets = buckets.filter(grain=grain.DETAIL)  # (spend is not known per country or device)
    elif stats_known:
        buckets = buckets.filter(grain__in=(grain.TOTAL, grain.CAMPAIGN))
    else:
        buckets = buckets.filter(grain=grain.TOTAL)
    if not include_money:
        buckets = buckets.filter(currency="")
    sums = {name: Sum(name) for name in (*ROLLUP_COUNTS, *ROLLUP_MONEY, "impressions", "clicks", "stat_days")}
    # Counts are stored without a currency (they take the offer's); grouping them with the money in the
    # offer's currency in SQL gives one row per group, not two to merge here.
    in_currency = Case(When(currency="", then=F("offer__currency")), default=F("currency"))
    extra = {"entry_currency": in_currency} if include_money else {}
    unfolded = None
    if clicks_known:
        # Clicks the fold has not added to the rollups yet (reporting.models.ClickFold), from their
        # table in the same statement: a fold that commits meanwhile is seen whole or not at all.
        start, end = _day_bounds(date_from, date_to)
        mark = Coalesce(Subquery(ClickFold.objects.filter(pk=1).values("through_click_id")[:1]), Value(0))
        clicks = Click.objects.filter(created_at__gte=start, created_at__lt=end, pk__gt=mark)
        counted = {name: Count("*") if name == "tracked_clicks" else Value(0) for name in sums}
        unfolded = (_filtered(clicks, CLICKS, filters), CLICKS, counted, {"entry_currency": F("offer__currency")})
    rows: dict[Key, Row] = {}
    other_currencies: dict[Key, Row] = {}
    found_rows = _grouped(buckets, ROLLUPS, group_by, include_money, sums, extra_keys=extra, also=unfolded)
    for found in _merged(found_rows, summed=sums):
        key = _key(found, keys)
        if include_money and found["entry_currency"] != found["g_currency"]:
            net = sum((found[name] or Decimal("0") for name in ROLLUP_MONEY), Decimal("0"))
            other_currencies.setdefault(key, {})[found["entry_currency"]] = net.quantize(Decimal("0.01"))
            continue
        shown = (
            found["leads"]
            or (include_money and found["entries"])
            or (stats_known and found["stat_days"])
            or (clicks_known and found["tracked_clicks"])
        )
        if not shown:
            continue
        row = rows[key] = {**dict(zip(keys, key, strict=True)), **_labels(found, labels)}
        row.update({name: found[name] or 0 for name in COUNT_METRICS})
        if include_money:
            row.update({name: found[name] or 0 for name in (*MONEY_SUMS, "sold_leads", "tracked_clicks")})
            if stats_known:
                row.update(impressions=found["impressions"] or 0, clicks=found["clicks"] or 0)
    return rows, other_currencies


def _sort_key(key: Key) -> Key:
    # Ids as numbers (9 before 10), other values by their text (dates, codes, sub ids); empty groups last.
    return tuple(
        (value is None, not isinstance(value, int), value if isinstance(value, int) else str(value)) for value in key
    )


def counted_clicks(rows: Iterable[Row]) -> int:
    """The clicks EPC and the funnel count: each row's source's clicks, ours where it reported none
    (no stats for the group, or a grouping without them), added up row by row."""
    return sum(int(row.get("clicks") or row.get("tracked_clicks") or 0) for row in rows)


def _add_ratios(row: Row, *, clicks: int | None = None) -> None:
    """Revenue, cost, margin, rates and money ratios of a row from its counts and sums (None where they
    divide by zero or a part is unknown). `clicks`: a total's, counted over its rows."""
    row["conversion_rate"] = _ratio(row["converted"], row["valid_leads"])
    row["validity_rate"] = _ratio(row["valid_leads"], row["leads"])
    if "lead_revenue" not in row:
        return
    revenue = row["lead_revenue"] + row["sale_revenue"]
    cost = None if row["media_spend"] is None else row["media_spend"] + row["supplier_cost"]
    margin = None if cost is None else revenue - cost
    clicks = counted_clicks([row]) if clicks is None else clicks
    row.update(
        revenue=revenue,
        cost=cost,
        margin=margin,
        average_sale_price=_ratio(row["lead_revenue"], row["sold_leads"], CENTS),
        cpl=_ratio(cost, row["valid_leads"], CENTS),
        cost_per_qualified=_ratio(cost, row["qualified"], CENTS),
        roi=_ratio(margin, cost),
        roas=_ratio(revenue, cost),
        epc=_ratio(revenue, clicks),
    )


def report_totals(rows: list[Row]) -> list[Row]:
    """A report's rows added up, one total per currency (for tiles and footers): sums added (money in
    other currencies too, each apart), ratios redone.

    A figure unknown in any row (spend per country, say) stays unknown in the total.
    """
    by_currency: dict[str | None, list[Row]] = {}
    for row in rows:
        by_currency.setdefault(row.get("currency"), []).append(row)
    totals = []
    for currency in sorted(by_currency, key=str):
        group = by_currency[currency]
        total: Row = {"currency": currency}
        for name in (*COUNT_METRICS, *TRAFFIC_METRICS, *MONEY_SUMS, "sold_leads"):
            values = [row[name] for row in group if name in row]
            if values:
                total[name] = None if None in values else sum(values)
            elif name in COUNT_METRICS:
                total[name] = 0
        for row in group:
            for other_currency, amount in row.get("money_other_currencies", {}).items():
                other = total.setdefault("money_other_currencies", {})
                other[other_currency] = other.get(other_currency, Decimal("0")) + amount
        # Row by row: the total of the source's clicks, where some rows had none, would leave ours out.
        _add_ratios(total, clicks=counted_clicks(group))
        totals.append(total)
    return totals

"""The marketing dashboard: a period against the one before it, built from the report selector.

Three reports (current period by source kind and campaign, current period by day, previous
period by day) feed every tile and chart, so the page costs a fixed number of queries.
Money is never added across currencies: the dashboard shows one currency at a time.
"""

import datetime
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from campaigns.models import TrafficSource

from .reports import COUNT_METRICS, MONEY_SUMS, TRAFFIC_METRICS, Row, counted_clicks, report, report_totals

PERIOD_DAYS = (7, 30, 90)
DEFAULT_PERIOD_DAYS = 30
RANKED_CAMPAIGNS = 5


@dataclass(frozen=True)
class Tile:
    label: str
    value: Decimal | int | None
    previous: Decimal | int | None
    kind: str  # "money", "count", "rate" (a fraction) or "ratio" (ROAS: times)
    lower_is_better: bool = False
    neutral: bool = False  # more spend is neither good nor bad news
    comparable: bool = True  # False: the previous period is too thin to compare with ("new")

    @property
    def change(self) -> Decimal | None:
        """Relative change for amounts; for rates, the difference in points (a rate's rate means little)."""
        if not self.comparable or self.value is None or self.previous is None:
            return None
        if self.kind == "rate":
            return Decimal(self.value) - Decimal(self.previous)
        if not self.previous:
            return None
        return (Decimal(self.value) - Decimal(self.previous)) / abs(Decimal(self.previous))

    @property
    def is_new(self) -> bool:
        """A figure with no earlier period worth comparing it to."""
        return not self.comparable and bool(self.value)

    @property
    def is_better(self) -> bool | None:
        change = self.change
        if not change or self.neutral:
            return None
        return (change < 0) if self.lower_is_better else (change > 0)


def _empty_total(currency: str) -> Row:
    zeros = dict.fromkeys((*COUNT_METRICS, *TRAFFIC_METRICS, "sold_leads"), 0)
    [total] = report_totals([{"currency": currency, **zeros, **dict.fromkeys(MONEY_SUMS, Decimal("0"))}])
    return total


def _pick_currency(rows: list[Row], wanted: str | None) -> tuple[str, list[str]]:
    moved: dict[str, Decimal] = {}  # cost + revenue per currency
    for row in rows:
        moved[row["currency"]] = moved.get(row["currency"], Decimal("0")) + (row["cost"] or 0) + row["revenue"]
    currencies = sorted(moved)
    if wanted in moved:
        return wanted, currencies
    # The currency most money moved in; USD for an empty period.
    return (max(currencies, key=lambda code: (moved[code], code)) if currencies else "USD"), currencies


def marketing_dashboard(
    *, days: int = DEFAULT_PERIOD_DAYS, currency: str | None = None, today: datetime.date | None = None
) -> dict[str, Any]:
    today = today or timezone.localdate()
    date_from = today - datetime.timedelta(days=days - 1)
    previous_to = date_from - datetime.timedelta(days=1)
    previous_from = previous_to - datetime.timedelta(days=days - 1)

    by_campaign = report(date_from=date_from, date_to=today, group_by=["traffic_source_kind", "campaign"])
    by_day = report(date_from=date_from, date_to=today, group_by=["day"])
    previous_days = report(date_from=previous_from, date_to=previous_to, group_by=["day"])
    currency, currencies = _pick_currency(by_campaign, currency)
    by_campaign = [row for row in by_campaign if row["currency"] == currency]
    total = next(iter(report_totals(by_campaign)), None) or _empty_total(currency)
    previous_days = [row for row in previous_days if row["currency"] == currency]
    previous = next(iter(report_totals(previous_days)), None) or _empty_total(currency)
    # Comparing with a period the business barely ran in (6 leads on its last day) reads "+3,233%";
    # one with activity on fewer than a quarter of its days (or on one day) is "new", not a baseline.
    active_days = sum(1 for row in previous_days if row["leads"] or row["cost"])
    comparable = active_days >= 2 and active_days * 4 >= days

    return {
        "date_from": date_from,
        "date_to": today,
        "days": days,
        "period_choices": PERIOD_DAYS,
        "currency": currency,
        "currencies": currencies,
        "tiles": _tiles(total, previous, comparable=comparable),
        "today": today,
        "daily": _daily(by_day, currency, date_from, today),
        "by_kind": _by_kind(by_campaign),
        "funnel": _funnel(total, counted_clicks(by_campaign)),
        **_ranked_campaigns(by_campaign),
    }


def _tiles(total: Row, previous: Row, *, comparable: bool) -> list[Tile]:
    def tile(label: str, name: str, kind: str, **judgement: bool) -> Tile:
        return Tile(label, total[name], previous[name], kind, comparable=comparable, **judgement)

    return [
        tile("Cost", "cost", "money", neutral=True),
        tile("Revenue", "revenue", "money"),
        tile("Margin", "margin", "money"),
        tile("Leads", "leads", "count"),
        tile("Valid leads", "valid_leads", "count"),
        tile("CPL", "cpl", "money", lower_is_better=True),
        tile("Conversion rate", "conversion_rate", "rate"),
        tile("ROI", "roi", "rate"),
        tile("ROAS", "roas", "ratio"),
    ]


def _daily(rows: list[Row], currency: str, date_from: datetime.date, date_to: datetime.date) -> list[Row]:
    """Cost and revenue for every day of the period, zero on days with nothing."""
    found = {row["day"]: row for row in rows if row["currency"] == currency}
    days = [date_from + datetime.timedelta(days=offset) for offset in range((date_to - date_from).days + 1)]
    return [
        {
            "day": day,
            "cost": found[day]["cost"] if day in found else Decimal("0"),
            "revenue": found[day]["revenue"] if day in found else Decimal("0"),
        }
        for day in days
    ]


def _by_kind(rows: list[Row]) -> list[Row]:
    labels = dict(TrafficSource.Kind.choices)
    kinds = sorted({row["traffic_source_kind"] for row in rows})
    result: list[Row] = []
    for kind in kinds:
        [total] = report_totals([row for row in rows if row["traffic_source_kind"] == kind])
        result.append({"kind": kind, "label": labels.get(kind, kind), **total})
    return result


def _funnel(total: Row, clicks: int) -> list[Row]:
    steps = [
        ("Clicks", clicks),
        ("Leads", total["leads"]),
        ("Valid", total["valid_leads"]),
        ("Qualified", total["qualified"]),
        ("Converted", total["converted"]),
    ]
    funnel, before = [], None
    for label, count in steps:
        funnel.append({"label": label, "count": count, "of_previous": (count / before) if before else None})
        before = count
    return funnel


def _ranked_campaigns(rows: list[Row]) -> dict[str, list[Row]]:
    """Campaigns with a cost: the best ROI first, and the worst first; a campaign is in one list only."""
    by_campaign: dict[int, list[Row]] = {}
    for row in rows:
        by_campaign.setdefault(row["campaign_id"], []).append(row)
    campaigns: list[Row] = []
    for campaign_rows in by_campaign.values():
        [total] = report_totals(campaign_rows)
        if total["roi"] is not None:
            first = campaign_rows[0]
            campaigns.append({"id": first["campaign_id"], "name": first["campaign_name"], **total})
    ranked = sorted(campaigns, key=lambda campaign: (-campaign["roi"], campaign["name"]))
    # With few campaigns, the better half is the top and the rest the bottom.
    split = min(RANKED_CAMPAIGNS, math.ceil(len(ranked) / 2))
    return {"top_campaigns": ranked[:split], "bottom_campaigns": ranked[split:][::-1][:RANKED_CAMPAIGNS]}

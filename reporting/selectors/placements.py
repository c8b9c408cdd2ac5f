"""Traffic quality by placement: the report by sub id (zone, site, creative) within one traffic source.

A placement is judged per campaign, against that campaign's thresholds, once it has brought the
campaign enough leads; below a threshold it is flagged. The blacklist is every placement id
flagged in any campaign of the source, written the way sources take it: one id per line.
"""

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from campaigns.models import Campaign, TrafficSource
from campaigns.services.clicks import clean_param

from .reports import PLACEMENT_GROUPINGS, Row, report


def percent_text(percent: Decimal) -> str:
    """60.00 -> "60%", 2.50 -> "2.5%", 33.33 -> "33.33%"."""
    return f"{percent.quantize(Decimal('0.01')).normalize():f}%"


def _flags(row: Row, campaign: Mapping[str, Any]) -> list[str]:
    """Why a judged placement falls below its campaign's thresholds (compared on the counts, not rounded rates)."""
    flags: list[str] = []
    minimum = campaign["placement_min_validity_rate"]
    if minimum is not None and row["valid_leads"] * 100 < minimum * row["leads"]:
        flags.append(f"validity {percent_text(row['validity_rate'] * 100)} < {percent_text(minimum)}")
    minimum = campaign["placement_min_conversion_rate"]
    if minimum is not None and minimum > 0:
        if not row["valid_leads"]:
            # Nothing valid to convert: no sales from enough leads is as low as conversion gets.
            flags.append(f"conversion 0% < {percent_text(minimum)} (no valid leads)")
        elif row["converted"] * 100 < minimum * row["valid_leads"]:
            flags.append(f"conversion {percent_text(row['conversion_rate'] * 100)} < {percent_text(minimum)}")
    return flags


def placement_quality(
    *, traffic_source: TrafficSource, sub_id: str, date_from: datetime.date, date_to: datetime.date
) -> list[Row]:
    """One row per placement and campaign of the source: the report's figures, judged.

    Each row has the report's columns (campaign, campaign_name, campaign_id, the sub id column,
    currency, counts, rates, tracked_clicks, revenue ...) plus `placement` (the id, None when the
    traffic came without one), `min_leads`, `judged`, `thresholds_set`, `flags` (reasons) and
    `flagged`. Sorted by placement (missing ids last), then campaign. Two queries more than the
    report: none per row.
    """
    if sub_id not in PLACEMENT_GROUPINGS:
        raise ValueError(f"Unknown placement sub id: {sub_id!r}; one of {', '.join(PLACEMENT_GROUPINGS)}")
    rows = report(
        date_from=date_from,
        date_to=date_to,
        group_by=["campaign", sub_id],
        filters={"traffic_source": [traffic_source.pk]},
        include_money=True,
    )
    thresholds = (
        {
            campaign["pk"]: campaign
            for campaign in Campaign.objects.filter(pk__in={row["campaign_id"] for row in rows}).values(
                "pk", "placement_min_leads", "placement_min_validity_rate", "placement_min_conversion_rate"
            )
        }
        if rows
        else {}
    )
    for row in rows:
        campaign = thresholds[row["campaign_id"]]
        row["placement"] = row[sub_id] if row[sub_id] not in (None, "") else None
        row["min_leads"] = campaign["placement_min_leads"]
        row["judged"] = row["leads"] >= campaign["placement_min_leads"]
        row["thresholds_set"] = (
            campaign["placement_min_validity_rate"] is not None or campaign["placement_min_conversion_rate"] is not None
        )
        row["flags"] = _flags(row, campaign) if row["judged"] else []
        row["flagged"] = bool(row["flags"])
    rows.sort(
        key=lambda row: (row["placement"] is None, str(row["placement"]), row["campaign_name"], row["campaign_id"])
    )
    return rows


def blacklisted_ids(rows: list[Row]) -> list[str]:
    """The sorted, unique ids of the flagged placements in placement_quality() rows; traffic without an id never."""
    # Ids from partner submissions are not cleaned as click URLs are: a line break in one would split it
    # or forge extra lines in the file, so they get the click tracking's cleaning here.
    ids = {clean_param(str(row["placement"])) for row in rows if row["flagged"] and row["placement"] is not None}
    return sorted(ids - {""})


def placement_blacklist(
    *, traffic_source: TrafficSource, sub_id: str, date_from: datetime.date, date_to: datetime.date
) -> list[str]:
    """Placement ids flagged in any campaign of the source in the period, sorted and unique."""
    rows = placement_quality(traffic_source=traffic_source, sub_id=sub_id, date_from=date_from, date_to=date_to)
    return blacklisted_ids(rows)

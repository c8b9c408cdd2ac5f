"""Importing a traffic source's daily stats (impressions, clicks, spend) from CSV."""

import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from leadcrm.csv_upload import CsvUploadError, cell_count_problem, control_character_problem, read_csv_upload

from ..models import Campaign, DailyStat, TrafficSource
from ..signals import daily_stats_changed

MAX_ROWS = 200_000
# Column names seen in traffic sources' exports, mapped to ours.
COLUMN_ALIASES = {
    "date": "date",
    "day": "date",
    "campaign": "campaign",
    "campaign_slug": "campaign",
    "impressions": "impressions",
    "impr": "impressions",
    "views": "impressions",
    "clicks": "clicks",
    "spend": "spend",
    "cost": "spend",
    "spent": "spend",
    "amount": "spend",
}
METRICS = ("impressions", "clicks", "spend")
_INTEGER = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")
_DECIMAL = re.compile(r"^\d+(\.\d{1,4})?$")
_MAX_SPEND = Decimal("1e12")
_MAX_COUNT = 10**15


@dataclass
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class DailyStatsImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    imported: bool = False

    @property
    def rejected(self) -> int:
        return len({error.line for error in self.errors})

    def summary(self) -> str:
        if not self.imported:
            return (
                f"Nothing imported: {self.rejected} of {self.rows} rows were rejected. "
                "Fix them and import the file again."
            )
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.errors:
            text += f"; {self.rejected} rejected rows skipped"
        return text + "."


def _parse_date(value: str) -> datetime.date:
    for pattern in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"date {value!r} is not a date like 2026-01-31")


def _parse_count(name: str, value: str) -> int:
    if not _INTEGER.match(value):
        raise ValueError(f"{name} {value!r} is not a whole number of 0 or more")
    number = int(value.replace(",", ""))
    if number > _MAX_COUNT:
        raise ValueError(f"{name} {value!r} is too large")
    return number


def _parse_spend(value: str) -> Decimal:
    cleaned = value.lstrip("$€£").strip()
    if not _DECIMAL.match(cleaned):
        raise ValueError(f"spend {value!r} is not an amount like 12.50 (0 or more, at most 4 decimals)")
    amount = Decimal(cleaned)
    if amount >= _MAX_SPEND:
        raise ValueError(f"spend {value!r} is too large")
    return amount


def daily_stats_import(
    *, data: bytes, traffic_source: TrafficSource | None = None, skip_invalid: bool = False
) -> DailyStatsImportReport:
    """Validate every row, then upsert the good ones by (campaign, date) in one transaction.

    By default a file with any rejected row imports nothing; with skip_invalid the good rows are
    imported and the rejected ones are reported. Either way no rejected row is written.
    """
    report = DailyStatsImportReport()
    try:
        header, rows = read_csv_upload(data)
    except CsvUploadError as error:
        report.errors.append(RowError(0, str(error)))
        return report
    if not header:
        report.errors.append(RowError(0, "The file is empty."))
        return report
    columns = [COLUMN_ALIASES.get(name.strip().lower().replace(" ", "_"), "") for name in header]
    twice = {column for column in columns if column and columns.count(column) > 1}
    if twice:
        # "impressions" and "views" both: which one is meant? The last would silently win.
        same = {
            meant: [cell for cell, column in zip(header, columns, strict=True) if column == meant] for meant in twice
        }
        named = "; ".join(
            f"{' and '.join(cells)} {'both' if len(cells) == 2 else 'all'} mean {meant}"
            for meant, cells in sorted(same.items())
        )
        report.errors.append(RowError(1, f"the header names a column twice: {named}; keep one of each"))
        return report
    missing = [name for name in ("date", "campaign") if name not in columns]
    if missing or not set(METRICS) & set(columns):
        report.errors.append(
            RowError(
                1,
                "the header needs columns date, campaign and at least one of impressions, clicks, "
                f"spend; found: {', '.join(header)}",
            )
        )
        return report
    present_metrics = [name for name in METRICS if name in columns]

    parsed: list[tuple[int, dict[str, str]]] = []
    for line, row in rows:
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(RowError(line, f"more than {MAX_ROWS} rows; split the file"))
            break
        too_many = cell_count_problem(row, header)
        problem = f"the row has {too_many}" if too_many else control_character_problem(row, header)
        if problem:  # the row is reported, and its values never reach a query
            report.errors.append(RowError(line, problem))
            continue
        values = {column: cell.strip() for column, cell in zip(columns, row, strict=False) if column}
        parsed.append((line, values))

    slugs = {values.get("campaign", "") for _, values in parsed}
    campaigns = {
        campaign.slug: campaign for campaign in Campaign.objects.filter(slug__in=slugs).select_related("traffic_source")
    }
    today = timezone.localdate()
    good: dict[tuple[int, datetime.date], tuple[int, dict[str, Decimal | int]]] = {}
    for line, values in parsed:
        try:
            slug = values.get("campaign", "")
            if not slug:
                raise ValueError("campaign is empty")
            campaign = campaigns.get(slug)
            if campaign is None:
                raise ValueError(f"no campaign with slug {slug[:80]!r}")
            if traffic_source and campaign.traffic_source_id != traffic_source.pk:
                raise ValueError(f"campaign {slug!r} does not run on {traffic_source.name}")
            date = _parse_date(values.get("date", ""))
            if date > today:
                raise ValueError(f"date {date} is in the future")
            metrics = {}
            for name in present_metrics:
                raw = values.get(name, "")
                if raw == "":
                    raise ValueError(f"{name} is empty")
                metrics[name] = _parse_spend(raw) if name == "spend" else _parse_count(name, raw)
            key = (campaign.pk, date)
            if key in good:
                raise ValueError(f"campaign {slug!r} on {date} is also on line {good[key][0]}")
            good[key] = (line, metrics)
        except ValueError as error:
            report.errors.append(RowError(line, str(error)))

    if report.errors and not skip_invalid:
        return report
    if not good:
        if not report.errors:
            report.errors.append(RowError(0, "The file has a header but no rows."))
        return report

    with transaction.atomic():
        campaign_ids = {campaign_id for campaign_id, _ in good}
        dates = [date for _, date in good]
        existing = {
            (stat.campaign_id, stat.date): stat
            for stat in DailyStat.objects.select_for_update().filter(
                campaign_id__in=campaign_ids, date__range=(min(dates), max(dates))
            )
        }
        # New days take the campaign's offer and source of now; days already stored keep theirs.
        current = {
            pk: (offer_id, source_id)
            for pk, offer_id, source_id in Campaign.objects.filter(pk__in=campaign_ids).values_list(
                "pk", "offer_id", "traffic_source_id"
            )
        }
        to_create, to_update = [], []
        for (campaign_id, date), (_, metrics) in good.items():
            stat = existing.get((campaign_id, date))
            if stat is None:
                offer_id, source_id = current[campaign_id]
                to_create.append(
                    DailyStat(
                        campaign_id=campaign_id, offer_id=offer_id, traffic_source_id=source_id, date=date, **metrics
                    )
                )
            elif any(getattr(stat, name) != value for name, value in metrics.items()):
                for name, value in metrics.items():
                    setattr(stat, name, value)
                stat.updated_at = timezone.now()  # bulk_update skips auto_now
                to_update.append(stat)
            else:
                report.unchanged += 1
        # update_conflicts: a row another import created since we read is overwritten, not a crash.
        DailyStat.objects.bulk_create(
            to_create,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["campaign", "date"],
            update_fields=[*present_metrics, "updated_at"],
        )
        DailyStat.objects.bulk_update(to_update, [*present_metrics, "updated_at"], batch_size=1000)
        report.created, report.updated = len(to_create), len(to_update)
        changed = [(stat.campaign_id, stat.date) for stat in (*to_create, *to_update)]
        daily_stats_changed.send(sender=DailyStat, days=changed)
    report.imported = True
    return report

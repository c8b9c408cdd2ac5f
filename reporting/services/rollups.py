"""Keeping the daily rollups exact: every event adds its share to its bucket in its own transaction
(reporting.receivers), and `rollups_rebuild` recomputes them from the raw rows (a first fill, a repair).

Tracked clicks are the exception: a click is its insert alone, and `rollups_fold_clicks` (each minute)
adds the clicks since its last run to their buckets. Reports count the clicks past the fold's mark
(reporting.models.ClickFold) from the clicks table.

A bucket's key: day, campaign, offer, traffic source, country, device type, currency and grain (see
reporting.models.DailyRollup). Additions are upserts that add (`x = x + excluded.x`), so concurrent
events never lose one another's counts; daily stats, which are replaced rather than added to, set.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.models import Click, DailyStat
from leadcrm.bulk import execute_soon, rows_source
from leads.models import Lead, LedgerEntry, Validity

from ..models import ClickFold, DailyRollup
from ..selectors.reports import COUNT_METRICS, LEAD_AGGREGATES

K = LedgerEntry.Kind
DETAIL, TOTAL, CAMPAIGN = DailyRollup.Grain.DETAIL, DailyRollup.Grain.TOTAL, DailyRollup.Grain.CAMPAIGN
KEY = ("day", "campaign_id", "offer_id", "traffic_source_id", "country", "device_type", "currency", "grain")
COUNTS = COUNT_METRICS
ADDED = (
    *COUNTS,
    "tracked_clicks",
    "entries",
    "sold_leads",
    "lead_revenue",
    "sale_revenue",
    "supplier_cost",
    "media_spend",
)
STATS = ("stat_days", "impressions", "clicks")
# The ledger kinds reports add up, and the rollup sum each goes to (as the ledger signs it).
MONEY_FIELD: dict[str, str] = {
    K.LEAD_SOLD: "lead_revenue",
    K.LEAD_RETURNED: "lead_revenue",
    K.SALE_COMMISSION: "sale_revenue",
    K.SALE_REVERSED: "sale_revenue",
    K.PAYOUT_EARNED: "supplier_cost",
    K.PAYOUT_REVERSED: "supplier_cost",
    K.MEDIA_SPEND: "media_spend",
}
SOLD_CHANGE: dict[str, int] = {K.LEAD_SOLD: 1, K.LEAD_RETURNED: -1}

Key = tuple[Any, ...]
Buckets = dict[Key, dict[str, int | Decimal]]
AnyBuckets = Mapping[Key, Mapping[str, int | Decimal]]  # what is only read: counts alone are buckets too


def lead_counts(lead: Lead, status: str | None = None) -> dict[str, int]:
    """What one lead adds to its bucket's counts (with `status` in place of its own), as the report
    counts it: judgements among billable (valid, original) leads, returns among all."""
    status = lead.status if status is None else status
    valid = lead.validity == Validity.VALID and not lead.is_duplicate
    original = not lead.is_duplicate
    return {
        "leads": 1,
        "valid_leads": int(valid),
        "duplicates": int(lead.is_duplicate),
        "suspect": int(original and lead.validity == Validity.SUSPECT),
        "invalid": int(original and lead.validity == Validity.INVALID),
        "qualified": int(valid and lead.qualification == "qualified"),
        "hard_leads": int(valid and lead.lead_type == "hard"),
        "soft_leads": int(valid and lead.lead_type == "soft"),
        "converted": int(valid and status == "won"),
        "returned": int(status == "returned"),
    }


def _lead_key(lead: Lead, currency: str = "") -> Key:
    return (
        timezone.localdate(lead.created_at),
        lead.campaign_id,
        lead.offer_id,
        lead.traffic_source_id,
        lead.country,
        lead.device_type,
        currency,
        DETAIL,
    )


def _upsert(buckets: AnyBuckets, fields: tuple[str, ...], *, add: bool) -> None:
    if not buckets:
        return
    table = DailyRollup._meta.db_table
    columns = [*KEY, *ADDED, *STATS]
    if add:
        changes = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in fields)
    else:
        changes = ", ".join(f"{name} = excluded.{name}" for name in fields)
    rows = [
        [*key, *(figures.get(name, 0) for name in (*ADDED, *STATS))]
        for key, figures in sorted(buckets.items(), key=lambda item: str(item[0]))  # one lock order for all
    ]
    source, params = rows_source(DailyRollup, columns, rows)
    # Table and column names are this module's constants; every value is a parameter. A new lead's
    # share goes with the capture's next round trip (leads.services.capture defers it).
    execute_soon(
        f"INSERT INTO {table} ({', '.join(columns)}) {source} ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {changes}",
        params,
    )


def with_totals(buckets: AnyBuckets) -> Buckets:
    """The buckets and, for detail ones, their share of the day's total over countries and devices."""
    every: Buckets = defaultdict(lambda: defaultdict(int))
    for key, figures in buckets.items():
        targets = [key]
        if key[7] == DETAIL:
            targets.append((*key[:4], "", "", key[6], TOTAL))
        for target in targets:
            for name, value in figures.items():
                every[target][name] += value
    return {key: dict(figures) for key, figures in every.items()}


def rollup_add(buckets: AnyBuckets) -> None:
    """Add figures to their buckets (creating them), detail ones to their totals too: one statement."""
    buckets = {key: figures for key, figures in buckets.items() if any(figures.values())}
    _upsert(with_totals(buckets), ADDED, add=True)


# --- What each event adds ------------------------------------------------------------------------


def rollup_lead_captured(*, lead: Lead) -> None:
    if not lead.is_test:
        rollup_add({_lead_key(lead): lead_counts(lead)})


def rollup_lead_deleted(*, lead: Lead) -> None:
    if not lead.is_test:
        rollup_add({_lead_key(lead): {name: -value for name, value in lead_counts(lead).items()}})


def rollup_lead_status_changed(*, lead: Lead, previous: str) -> None:
    if lead.is_test:
        return
    before, after = lead_counts(lead, previous), lead_counts(lead)
    rollup_add({_lead_key(lead): {name: after[name] - before[name] for name in after}})


def rollup_ledger_posted(*, entries: Iterable[LedgerEntry]) -> None:
    entries = [entry for entry in entries if entry.kind in MONEY_FIELD]
    unloaded = [entry.lead_id for entry in entries if entry.lead_id and not LedgerEntry.lead.is_cached(entry)]
    places = (
        {
            pk: (country, device)
            for pk, country, device in Lead.objects.filter(pk__in=unloaded).values_list("pk", "country", "device_type")
        }
        if unloaded
        else {}
    )
    buckets: Buckets = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        if entry.lead_id:
            lead = entry.lead if LedgerEntry.lead.is_cached(entry) else None
            country, device = (lead.country, lead.device_type) if lead is not None else places[entry.lead_id]
            grain = DETAIL
        else:
            country, device, grain = "", "", CAMPAIGN
        key = (
            entry.day,
            entry.campaign_id,
            entry.offer_id,
            entry.traffic_source_id,
            country,
            device,
            entry.currency,
            grain,
        )
        buckets[key][MONEY_FIELD[entry.kind]] += entry.amount
        buckets[key]["entries"] += 1
        buckets[key]["sold_leads"] += SOLD_CHANGE.get(entry.kind, 0)
    rollup_add(buckets)


# A click takes its id when its INSERT runs and becomes visible when that one statement commits, so
# once a click a minute old is visible, no click with a lower id can still appear. The fold stops at
# the last such click and never moves past a click it could not see yet.
FOLD_SETTLE = datetime.timedelta(minutes=1)
FOLD_BATCH = 100_000  # click ids per transaction: a first fold after a long pause commits as it goes


def _locked_click_fold() -> ClickFold:
    """The fold's mark, locked until the transaction ends: folds, click deletions and rebuilds take
    it first (before any rollup row), so they run one after another."""
    # Made if missing (a flushed test database) without a race: two folds may both find none.
    ClickFold.objects.bulk_create([ClickFold(pk=1)], ignore_conflicts=True)
    return ClickFold.objects.select_for_update().get(pk=1)


def rollups_fold_clicks(*, settle: datetime.timedelta = FOLD_SETTLE, batch: int = FOLD_BATCH) -> int:
    """Add every settled click past the mark to its bucket, then move the mark past it; returns how
    many were added. The upsert and the mark commit together, so a fold that dies adds nothing, and
    running it twice (or in two workers at once) adds each click once."""
    folded = 0
    while True:
        with transaction.atomic():
            mark = _locked_click_fold()
            after = mark.through_click_id
            settled = Click.objects.filter(pk__gt=after, created_at__lt=timezone.now() - settle)
            last = settled.order_by("-pk").values_list("pk", flat=True).first()
            if last is None:
                return folded
            through = min(last, after + batch)
            clicks = Click.objects.filter(pk__gt=after, pk__lte=through).order_by()
            place = ("campaign_id", "offer_id", "traffic_source_id")
            buckets: Buckets = {}
            added = 0
            for row in clicks.values(*place, "country", "device_type", day=TruncDate("created_at")).annotate(
                tracked_clicks=Count("pk")
            ):
                key = (row["day"], *(row[name] for name in place), row["country"], row["device_type"], "", DETAIL)
                buckets[key] = {"tracked_clicks": row["tracked_clicks"]}
                added += row["tracked_clicks"]
            rollup_add(buckets)
            ClickFold.objects.filter(pk=1).update(through_click_id=through, folded_at=timezone.now())
        folded += added


def rollup_click_deleted(*, click: Click) -> None:
    """A deleted click leaves its bucket if the fold had added it (otherwise reports simply stop
    counting it). Under the mark's lock: a fold running now either finished first or runs after."""
    if click.pk > _locked_click_fold().through_click_id:
        return
    key = (
        timezone.localdate(click.created_at),
        click.campaign_id,
        click.offer_id,
        click.traffic_source_id,
        click.country,
        click.device_type,
        "",
        DETAIL,
    )
    rollup_add({key: {"tracked_clicks": -1}})


def rollup_stats_changed(*, days: Iterable[tuple[int, datetime.date]], deleted: DailyStat | None = None) -> None:
    """Set the traffic of these campaign days to what their daily stats say now."""
    days = set(days)
    buckets: Buckets = {}
    if deleted is not None:
        buckets[_stat_key(deleted)] = dict.fromkeys(STATS, 0)
    if days:
        stats = DailyStat.objects.filter(
            campaign_id__in={campaign for campaign, _ in days}, date__in={day for _, day in days}
        )
        for stat in stats:
            if (stat.campaign_id, stat.date) in days:
                buckets[_stat_key(stat)] = {"stat_days": 1, "impressions": stat.impressions, "clicks": stat.clicks}
    _upsert(buckets, STATS, add=False)


def rollups_forget(*, campaign_id: int | None = None, traffic_source_id: int | None = None) -> None:
    """A campaign or traffic source deleted: its buckets go, after the deletes of its clicks and days
    (whose receivers wrote them again, once the cascade had deleted them) and before the commit
    checks the foreign keys."""
    if campaign_id is not None:
        DailyRollup.objects.filter(campaign_id=campaign_id).delete()
    if traffic_source_id is not None:
        DailyRollup.objects.filter(traffic_source_id=traffic_source_id).delete()


def _stat_key(stat: DailyStat) -> Key:
    return (stat.date, stat.campaign_id, stat.offer_id, stat.traffic_source_id, "", "", "", CAMPAIGN)


# --- From raw rows ---------------------------------------------------------------------------------


def rollups_from_raw(
    date_from: datetime.date | None = None, date_to: datetime.date | None = None, *, clicks_through: int | None = None
) -> Buckets:
    """Every bucket computed afresh from leads, the ledger, daily stats and tracked clicks (those up to
    id `clicks_through` when given: what the fold has added so far)."""
    zone = timezone.get_current_timezone()

    def in_days(queryset: QuerySet[Any], field: str, is_date: bool) -> QuerySet[Any]:
        if date_from is not None:
            start = date_from if is_date else datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
            queryset = queryset.filter(**{f"{field}__gte": start})
        if date_to is not None:
            end = date_to + datetime.timedelta(days=1)
            end = end if is_date else datetime.datetime.combine(end, datetime.time.min, tzinfo=zone)
            queryset = queryset.filter(**{f"{field}__lt": end})
        return queryset.order_by()

    buckets: Buckets = defaultdict(lambda: defaultdict(int))
    place = ("campaign_id", "offer_id", "traffic_source_id")
    leads = in_days(Lead.objects.filter(is_test=False), "created_at", False)
    for row in leads.values(*place, "country", "device_type", day=TruncDate("created_at")).annotate(**LEAD_AGGREGATES):
        key = (row["day"], *(row[name] for name in place), row["country"], row["device_type"], "", DETAIL)
        buckets[key].update({name: row[name] for name in COUNTS})

    entries = in_days(LedgerEntry.objects.filter(kind__in=list(MONEY_FIELD)), "day", True)
    sums = {field: Sum("amount", filter=Q(kind__in=[k for k, f in MONEY_FIELD.items() if f == field])) for field in
            set(MONEY_FIELD.values())}  # fmt: skip
    for row in entries.values(
        "day", *place, "currency", country=F("lead__country"), device=F("lead__device_type")
    ).annotate(
        entries=Count("pk"),
        sold=Count("pk", filter=Q(kind=K.LEAD_SOLD)),
        unsold=Count("pk", filter=Q(kind=K.LEAD_RETURNED)),
        **sums,
    ):
        is_lead = row["country"] is not None
        key = (
            row["day"],
            *(row[name] for name in place),
            row["country"] if is_lead else "",
            row["device"] if is_lead else "",
            row["currency"],
            DETAIL if is_lead else CAMPAIGN,
        )
        figures = buckets[key]
        figures["entries"] += row["entries"]
        figures["sold_leads"] += row["sold"] - row["unsold"]
        for field in sums:
            figures[field] += row[field] or 0

    stats = in_days(DailyStat.objects.all(), "date", True)
    for row in stats.values("date", *place).annotate(
        stat_days=Count("pk"), impressions=Sum("impressions"), clicks=Sum("clicks")
    ):
        key = (row["date"], *(row[name] for name in place), "", "", "", CAMPAIGN)
        buckets[key].update({name: row[name] for name in STATS})

    clicks = in_days(Click.objects.all(), "created_at", False)
    if clicks_through is not None:
        clicks = clicks.filter(pk__lte=clicks_through)
    for row in clicks.values(*place, "country", "device_type", day=TruncDate("created_at")).annotate(
        tracked_clicks=Count("pk")
    ):
        key = (row["day"], *(row[name] for name in place), row["country"], row["device_type"], "", DETAIL)
        buckets[key]["tracked_clicks"] += row["tracked_clicks"]
    return with_totals(buckets)


def rollups_stored(date_from: datetime.date | None = None, date_to: datetime.date | None = None) -> Buckets:
    """The stored buckets that hold anything, in the shape of rollups_from_raw (to compare the two)."""
    rows = DailyRollup.objects.all()
    if date_from is not None:
        rows = rows.filter(day__gte=date_from)
    if date_to is not None:
        rows = rows.filter(day__lte=date_to)
    stored = {}
    for row in rows.values(*KEY, *ADDED, *STATS):
        figures = {name: row[name] for name in (*ADDED, *STATS) if row[name]}
        if figures:
            stored[tuple(row[name] for name in KEY)] = figures
    return stored


@transaction.atomic
def rollups_rebuild(
    *, date_from: datetime.date | None = None, date_to: datetime.date | None = None, days_per_batch: int = 31
) -> int:
    """Replace the rollups of these days (every day that has data, without bounds) with a fresh
    computation, a month at a time so memory stays bounded; returns the buckets written.

    On PostgreSQL the table is locked first, so an event that commits meanwhile adds its share after
    the rebuild (its upsert waits) rather than being counted twice or lost. Clicks are folded first,
    then counted up to the fold's mark, held meanwhile: the few newer ones the next fold adds."""
    rollups_fold_clicks()
    clicks_through = _locked_click_fold().through_click_id
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {DailyRollup._meta.db_table} IN EXCLUSIVE MODE")
    first, last = date_from or _first_day(), date_to or _last_day()
    stale = DailyRollup.objects.all()
    stale = stale.filter(day__gte=date_from) if date_from else stale
    stale = stale.filter(day__lte=date_to) if date_to else stale
    stale.delete()
    written = 0
    while first is not None and first <= last:
        end = min(first + datetime.timedelta(days=days_per_batch - 1), last)
        fresh = rollups_from_raw(first, end, clicks_through=clicks_through)
        DailyRollup.objects.bulk_create(
            (
                DailyRollup(**dict(zip(KEY, key, strict=True)), **figures)
                for key, figures in fresh.items()
                if any(figures.values())
            ),
            batch_size=2000,
        )
        written += len(fresh)
        first = end + datetime.timedelta(days=1)
    return written


def _first_day() -> datetime.date | None:
    """The earliest day anything was recorded on (None: nothing yet)."""
    return min(_edge_days(latest=False), default=None)


def _last_day() -> datetime.date:
    """The latest day anything was recorded on, and at least tomorrow: a day of spend or a ledger entry
    may be dated ahead (imported for a day to come), and its rollups are rebuilt like the others."""
    return max([timezone.localdate() + datetime.timedelta(days=1), *_edge_days(latest=True)])


def _edge_days(*, latest: bool) -> list[datetime.date]:
    """The first (or last) day of leads, clicks, ledger entries and days of spend, where there are any."""
    order = "-" if latest else ""
    moments = [
        Lead.objects.order_by(f"{order}created_at").values_list("created_at", flat=True).first(),
        Click.objects.order_by(f"{order}created_at").values_list("created_at", flat=True).first(),
    ]
    days = [timezone.localdate(moment) for moment in moments if moment]
    days += [
        day
        for day in (
            LedgerEntry.objects.order_by(f"{order}day").values_list("day", flat=True).first(),
            DailyStat.objects.order_by(f"{order}date").values_list("date", flat=True).first(),
        )
        if day
    ]
    return days

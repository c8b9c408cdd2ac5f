"""Reports at scale: the report (reporting.selectors.report, read from the daily rollups) against a floor
of the same figures from hand-written GROUP BY queries over the raw tables (leads, the ledger, daily
stats, clicks) through a bare cursor; the same report read from the raw tables; and the admin index of
a Marketing user against a stock ModelAdmin changelist of leads. Each is timed best of three.

Sizes come from BENCH_REPORT_LEADS (default 20,000; the issue's figure is 1,000,000),
BENCH_REPORT_CAMPAIGNS (100), BENCH_REPORT_DAYS (365) and BENCH_REPORT_CLICKS (tracked clicks,
default as many as leads). PostgreSQL is filled with INSERT ... SELECT generate_series(), SQLite
with bulk_create; the ledger gets each sold lead's sale (and its return), each sale's commission,
some suppliers' payouts and every day's spend; then the rollups are rebuilt (timed).
"""

import datetime
import os
import random
import time
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from bench.figures import Figure
from campaigns.models import Advertiser, Campaign, Click, DailyStat, Offer, TrafficSource
from leads.models import Lead, LedgerEntry
from reporting.selectors import report
from reporting.selectors.reports import COUNT_METRICS
from reporting.services.rollups import rollups_rebuild

LEADS = int(os.environ.get("BENCH_REPORT_LEADS", "20000"))
CAMPAIGNS = int(os.environ.get("BENCH_REPORT_CAMPAIGNS", "100"))
DAYS = int(os.environ.get("BENCH_REPORT_DAYS", "365"))
CLICKS = int(os.environ.get("BENCH_REPORT_CLICKS", str(LEADS)))

# The mix of leads, as (value, cumulative share), the same on both databases.
VALIDITY = (("valid", 0.78), ("suspect", 0.90), ("invalid", 1.0))
QUALIFICATION = (("qualified", 0.55), ("disqualified", 1.0))
LEAD_TYPE = (("hard", 0.6), ("soft", 1.0))
STATUS = (("won", 0.09), ("returned", 0.12), ("lost", 0.30), ("contacted", 0.45), ("working", 0.55), ("new", 1.0))
DOOR = (("landing_page", 0.7), ("api", 0.9), ("quiz", 1.0))
DEVICE_TYPE = (("mobile", 0.6), ("desktop", 0.95), ("tablet", 1.0))
# Of the sales (won, and returned ones whose sale was reversed): in another currency than the
# offer's, in the offer's, or with no currency given (read as the offer's).
SALE_CURRENCY = (("other", 0.05), ("offer", 0.5), ("", 1.0))
DUPLICATE_SHARE = 0.07
TEST_SHARE = 0.004
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "AU")
SOURCES = (("push", "PushHouse"), ("pop", "PopAds"), ("native", "Taboola"), ("search", "Bing"), ("social", "Meta"))
OFFERS = (  # two advertisers: (advertiser, offer, currency)
    ("Bench report Sunrise", "Solar quotes", "USD"),
    ("Bench report Sunrise", "Home insurance", "USD"),
    ("Bench report Sunrise", "Roofing", "USD"),
    ("Bench report Northwind", "Solar DE", "EUR"),
    ("Bench report Northwind", "Loans UK", "GBP"),
    ("Bench report Northwind", "CRM software", "USD"),
)

# The floor computes them in this order, by hand, below.
COUNT_NAMES = COUNT_METRICS
VALID = "l.validity = 'valid' AND NOT l.is_duplicate"
LEAD_FIGURES = f"""count(*),
    count(*) FILTER (WHERE {VALID}),
    count(*) FILTER (WHERE l.is_duplicate),
    count(*) FILTER (WHERE l.validity = 'suspect' AND NOT l.is_duplicate),
    count(*) FILTER (WHERE l.validity = 'invalid' AND NOT l.is_duplicate),
    count(*) FILTER (WHERE {VALID} AND l.qualification = 'qualified'),
    count(*) FILTER (WHERE {VALID} AND l.lead_type = 'hard'),
    count(*) FILTER (WHERE {VALID} AND l.lead_type = 'soft'),
    count(*) FILTER (WHERE {VALID} AND l.status = 'won'),
    count(*) FILTER (WHERE l.status = 'returned')"""
LEAD_NAMES = COUNT_NAMES
STAT_NAMES = ("impressions", "clicks")
MONEY_NAMES = ("lead_revenue", "sale_revenue", "media_spend", "supplier_cost", "sold_leads")
# The ledger's money per group, as the report adds it (spend and payouts are booked negative).
LEDGER_FIGURES = """sum(e.amount) FILTER (WHERE e.kind IN ('lead_sold', 'lead_returned')),
    sum(e.amount) FILTER (WHERE e.kind IN ('sale_commission', 'sale_reversed')),
    -sum(e.amount) FILTER (WHERE e.kind = 'media_spend'),
    -sum(e.amount) FILTER (WHERE e.kind IN ('payout_earned', 'payout_reversed')),
    count(*) FILTER (WHERE e.kind = 'lead_sold') - count(*) FILTER (WHERE e.kind = 'lead_returned')"""
MONEY_KINDS = (
    "lead_sold",
    "lead_returned",
    "sale_commission",
    "sale_reversed",
    "payout_earned",
    "payout_reversed",
    "media_spend",
)
SOLD_SHARE, PAID_SUPPLIER_SHARE = 6, 3  # of every 10 billable leads: sold; earning a supplier payout


def insert_select(model, *, columns: dict[str, str], source: str, params: dict) -> None:
    """INSERT INTO the model's table SELECT ... FROM source (PostgreSQL): the SQL given for some
    columns, and every other NOT NULL column its model default, so a new column never breaks this."""
    params, values = dict(params), {}
    for field in model._meta.concrete_fields:
        if field.column in columns:
            values[field.column] = columns[field.column]
        elif field.primary_key or field.null:
            continue
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            values[field.column] = "now()"
        else:
            default = field.get_default()
            if default is None:
                raise ValueError(f"{model.__name__}.{field.name} is NOT NULL and has no default: give its SQL")
            params[f"default_{field.column}"] = field.get_db_prep_save(default, connection)
            values[field.column] = f"%(default_{field.column})s"
    names = ", ".join(connection.ops.quote_name(column) for column in values)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {model._meta.db_table} ({names}) SELECT {', '.join(values.values())} FROM {source}",  # noqa: S608  SQL of this module
            params,
        )


@contextmanager
def indexes_built_after(table: str):
    """Drop the table's plain indexes and build them again afterwards (PostgreSQL), as a bulk load
    does: a million rows through two dozen indexes take minutes, building the indexes seconds."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)""",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("RESET maintenance_work_mem")


def _case(column: str, mix) -> str:
    """The SQL picking a value of the mix by a random number in [0, 1)."""
    branches = " ".join(f"WHEN {column} < {share} THEN '{value}'" for value, share in mix[:-1])
    return f"CASE {branches} ELSE '{mix[-1][0]}' END"


def _pick(mix, number: float) -> str:
    return next(value for value, share in mix if number < share)


def _other_currency(currency: str) -> str:
    return "EUR" if currency == "USD" else "USD"


def _fill_postgresql(campaigns: list[Campaign], start: datetime.datetime, date_from: datetime.date) -> None:
    params = {
        "leads": LEADS,
        "clicks": CLICKS,
        "campaigns": len(campaigns),
        "days": DAYS,
        "start": start,
        "date_from": date_from,
        "campaign_ids": [campaign.pk for campaign in campaigns],
        "offer_ids": [campaign.offer_id for campaign in campaigns],
        "source_ids": [campaign.traffic_source_id for campaign in campaigns],
        "currencies": [campaign.offer.currency for campaign in campaigns],
        "other_currencies": [_other_currency(campaign.offer.currency) for campaign in campaigns],
        "countries": list(COUNTRIES),
        "zone": timezone.get_current_timezone_name(),
    }
    created_at = (
        "%(start)s + floor(r.day * %(days)s) * interval '1 day' + floor(r.second * 86400) * interval '1 second'"
    )
    status = _case("r.status", STATUS)
    sold = f"{status} IN ('won', 'returned')"
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
    # random() in the subquery's select list keeps it from being inlined: one draw per row and column.
    with indexes_built_after(Lead._meta.db_table):
        insert_select(
            Lead,
            columns={
                "public_id": "gen_random_uuid()",
                "created_at": created_at,
                "door": _case("r.door", DOOR),
                "is_test": f"r.test < {TEST_SHARE}",
                "campaign_id": "(%(campaign_ids)s::bigint[])[r.c]",
                "offer_id": "(%(offer_ids)s::bigint[])[r.c]",
                "traffic_source_id": "(%(source_ids)s::bigint[])[r.c]",
                "email": "'report' || r.n || '@example.com'",
                "phone": "'+1650555' || lpad(mod(r.n, 10000)::text, 4, '0')",
                "first_name": "'Jo'",
                "last_name": "'Doe'",
                "country": "(%(countries)s::text[])[1 + floor(r.country * 6)::int]",
                "device_type": _case("r.device", DEVICE_TYPE),
                "lead_type": _case("r.lead_type", LEAD_TYPE),
                "validity": _case("r.validity", VALIDITY),
                "is_duplicate": f"r.duplicate < {DUPLICATE_SHARE}",
                "qualification": _case("r.qualification", QUALIFICATION),
                "score": "floor(r.score * 101)::int",
                "status": status,
                "sale_amount": f"CASE WHEN {sold} THEN round((40 + r.amount * 960)::numeric, 2) END",
                "sale_currency": (
                    f"CASE WHEN NOT {sold} THEN '' "
                    f"WHEN r.currency < {SALE_CURRENCY[0][1]} THEN (%(other_currencies)s::text[])[r.c] "
                    f"WHEN r.currency < {SALE_CURRENCY[1][1]} THEN (%(currencies)s::text[])[r.c] ELSE '' END"
                ),
            },
            source="""(
                SELECT n, 1 + mod(n, %(campaigns)s) AS c, random() AS day, random() AS second, random() AS door,
                    random() AS test, random() AS country, random() AS device, random() AS lead_type,
                    random() AS validity, random() AS duplicate, random() AS qualification, random() AS score,
                    random() AS status, random() AS amount, random() AS currency
                FROM generate_series(0, %(leads)s - 1) AS n
            ) AS r""",
            params=params,
        )
    insert_select(
        DailyStat,
        columns={
            "campaign_id": "(%(campaign_ids)s::bigint[])[r.c]",
            "offer_id": "(%(offer_ids)s::bigint[])[r.c]",
            "traffic_source_id": "(%(source_ids)s::bigint[])[r.c]",
            "date": "%(date_from)s::date + r.d",
            "impressions": "r.impressions",
            "clicks": "r.clicks",
            "spend": "round((r.clicks * (0.02 + r.cpc * 0.4))::numeric, 4)",
        },
        source="""(
            SELECT c, d, impressions, floor(impressions * (0.005 + random() * 0.03))::bigint AS clicks,
                random() AS cpc
            FROM (
                SELECT c, d, 1000 + floor(random() * 50000)::bigint AS impressions
                FROM generate_series(1, %(campaigns)s) AS c, generate_series(0, %(days)s - 1) AS d
            ) AS s
        ) AS r""",
        params=params,
    )
    with indexes_built_after(Click._meta.db_table):
        insert_select(
            Click,
            columns={
                "campaign_id": "(%(campaign_ids)s::bigint[])[r.c]",
                "traffic_source_id": "(%(source_ids)s::bigint[])[r.c]",
                "offer_id": "(%(offer_ids)s::bigint[])[r.c]",
                "click_id": "md5(r.n::text)",
                "created_at": created_at,
                "country": "(%(countries)s::text[])[1 + floor(r.country * 6)::int]",
            },
            source="""(
                SELECT n, 1 + mod(n, %(campaigns)s) AS c, random() AS day, random() AS second, random() AS country
                FROM generate_series(0, %(clicks)s - 1) AS n
            ) AS r""",
            params=params,
        )
    _fill_ledger_postgresql(params)
    with connection.cursor() as cursor:
        # What autovacuum would have done by the time anyone reads a year of data (the planner's
        # choices depend on it, the small tables' statistics included).
        cursor.execute(
            "VACUUM ANALYZE leads_lead, campaigns_dailystat, campaigns_click, campaigns_campaign, campaigns_offer, "
            "campaigns_trafficsource, campaigns_advertiser, leads_ledgerentry"
        )


def _fill_ledger_postgresql(params: dict) -> None:
    """The money the leads made, as the services book it: a sale at a price for 6 in 10 billable leads
    (returned ones reversed), each sale's commission in its currency (a returned sale's reversed), a
    supplier's payout for 3 in 10 billable leads (reversed on return), and every day's spend."""
    billable = "NOT l.is_test AND l.validity = 'valid' AND NOT l.is_duplicate"
    lead_columns = {
        "day": "(l.created_at AT TIME ZONE %(zone)s)::date",
        "created_at": "l.created_at",
        "lead_id": "l.id",
        "campaign_id": "l.campaign_id",
        "offer_id": "l.offer_id",
        "traffic_source_id": "l.traffic_source_id",
    }
    source = "leads_lead l JOIN campaigns_offer o ON o.id = l.offer_id WHERE "
    commission_currency = "coalesce(nullif(l.sale_currency, ''), o.currency)"
    books = [
        ("sold", "lead_sold", "20 + mod(l.id, 31)", "o.currency", f"{billable} AND mod(l.id, 10) < {SOLD_SHARE}"),
        (
            "returned",
            "lead_returned",
            "-(20 + mod(l.id, 31))",
            "o.currency",
            f"{billable} AND mod(l.id, 10) < {SOLD_SHARE} AND l.status = 'returned'",
        ),
        (
            "commission",
            "sale_commission",
            "l.sale_amount",
            commission_currency,
            "NOT l.is_test AND l.status IN ('won', 'returned')",
        ),
        ("reversed", "sale_reversed", "-l.sale_amount", commission_currency, "NOT l.is_test AND l.status = 'returned'"),
        ("payout", "payout_earned", "-5", "o.currency", f"{billable} AND mod(l.id, 10) >= 10 - {PAID_SUPPLIER_SHARE}"),
        (
            "payout-back",
            "payout_reversed",
            "5",
            "o.currency",
            f"{billable} AND mod(l.id, 10) >= 10 - {PAID_SUPPLIER_SHARE} AND l.status = 'returned'",
        ),
    ]
    with indexes_built_after(LedgerEntry._meta.db_table):
        for name, kind, amount, currency, condition in books:
            insert_select(
                LedgerEntry,
                columns={
                    **lead_columns,
                    "key": f"'bench:{name}:' || l.id",
                    "kind": f"'{kind}'",
                    "amount": amount,
                    "currency": currency,
                    "advertiser_id": "o.advertiser_id" if "payout" not in name else "NULL",
                },
                source=source + condition,
                params=params,
            )
        insert_select(
            LedgerEntry,
            columns={
                "key": "'bench:spend:' || s.id",
                "kind": "'media_spend'",
                "amount": "-s.spend",
                "currency": "o.currency",
                "day": "s.date",
                "campaign_id": "s.campaign_id",
                "offer_id": "s.offer_id",
                "traffic_source_id": "s.traffic_source_id",
            },
            source="campaigns_dailystat s JOIN campaigns_offer o ON o.id = s.offer_id",
            params=params,
        )


def _fill_sqlite(campaigns: list[Campaign], start: datetime.datetime, date_from: datetime.date) -> None:
    rng = random.Random(42)

    def moment() -> datetime.datetime:
        return start + datetime.timedelta(days=int(rng.random() * DAYS), seconds=int(rng.random() * 86400))

    def lead(n: int) -> Lead:
        campaign = campaigns[n % len(campaigns)]
        status = _pick(STATUS, rng.random())
        sold = status in ("won", "returned")
        currency = {"other": _other_currency(campaign.offer.currency), "offer": campaign.offer.currency, "": ""}[
            _pick(SALE_CURRENCY, rng.random())
        ]
        return Lead(
            created_at=moment(),
            door=_pick(DOOR, rng.random()),
            is_test=rng.random() < TEST_SHARE,
            campaign=campaign,
            offer_id=campaign.offer_id,
            traffic_source_id=campaign.traffic_source_id,
            email=f"report{n}@example.com",
            phone=f"+1650555{n % 10000:04d}",
            first_name="Jo",
            last_name="Doe",
            country=rng.choice(COUNTRIES),
            device_type=_pick(DEVICE_TYPE, rng.random()),
            lead_type=_pick(LEAD_TYPE, rng.random()),
            validity=_pick(VALIDITY, rng.random()),
            is_duplicate=rng.random() < DUPLICATE_SHARE,
            qualification=_pick(QUALIFICATION, rng.random()),
            score=rng.randrange(101),
            status=status,
            sale_amount=Decimal(f"{40 + rng.random() * 960:.2f}") if sold else None,
            sale_currency=currency if sold else "",
        )

    def stat(campaign: Campaign, day: int) -> DailyStat:
        impressions = 1000 + rng.randrange(50000)
        clicks = int(impressions * (0.005 + rng.random() * 0.03))
        spend = Decimal(f"{clicks * (0.02 + rng.random() * 0.4):.4f}")
        date = date_from + datetime.timedelta(days=day)
        return DailyStat(
            campaign=campaign,
            offer_id=campaign.offer_id,
            traffic_source_id=campaign.traffic_source_id,
            date=date,
            impressions=impressions,
            clicks=clicks,
            spend=spend,
        )

    def click(n: int) -> Click:
        campaign = campaigns[n % len(campaigns)]
        return Click(
            campaign=campaign,
            traffic_source_id=campaign.traffic_source_id,
            offer_id=campaign.offer_id,
            created_at=moment(),
        )

    with transaction.atomic():  # one commit, not one per batch
        Lead.objects.bulk_create((lead(n) for n in range(LEADS)), batch_size=5000)
        DailyStat.objects.bulk_create((stat(c, d) for c in campaigns for d in range(DAYS)), batch_size=5000)
        Click.objects.bulk_create((click(n) for n in range(CLICKS)), batch_size=5000)
        LedgerEntry.objects.bulk_create(_ledger_entries(campaigns), batch_size=5000)


def _ledger_entries(campaigns: list[Campaign]):
    """The same books as _fill_ledger_postgresql, entry by entry."""
    currency = {campaign.offer_id: campaign.offer.currency for campaign in campaigns}
    advertiser = {campaign.offer_id: campaign.offer.advertiser_id for campaign in campaigns}
    for lead in Lead.objects.filter(is_test=False).order_by("pk").iterator(chunk_size=5000):
        place = {
            "day": timezone.localdate(lead.created_at),
            "created_at": lead.created_at,
            "lead_id": lead.pk,
            "campaign_id": lead.campaign_id,
            "offer_id": lead.offer_id,
            "traffic_source_id": lead.traffic_source_id,
        }
        billable = lead.validity == "valid" and not lead.is_duplicate
        returned = lead.status == "returned"
        price = Decimal(20 + lead.pk % 31)
        buyer = {"advertiser_id": advertiser[lead.offer_id]}
        offer_currency = currency[lead.offer_id]
        books = []
        if billable and lead.pk % 10 < SOLD_SHARE:
            books.append(("sold", "lead_sold", price, offer_currency, buyer))
            if returned:
                books.append(("returned", "lead_returned", -price, offer_currency, buyer))
        if lead.status in ("won", "returned"):
            sale_currency = lead.sale_currency or offer_currency
            books.append(("commission", "sale_commission", lead.sale_amount, sale_currency, buyer))
            if returned:
                books.append(("reversed", "sale_reversed", -lead.sale_amount, sale_currency, buyer))
        if billable and lead.pk % 10 >= 10 - PAID_SUPPLIER_SHARE:
            books.append(("payout", "payout_earned", Decimal(-5), offer_currency, {}))
            if returned:
                books.append(("payout-back", "payout_reversed", Decimal(5), offer_currency, {}))
        for name, kind, amount, money_currency, party in books:
            yield LedgerEntry(
                key=f"bench:{name}:{lead.pk}", kind=kind, amount=amount, currency=money_currency, **place, **party
            )
    for stat in DailyStat.objects.filter(campaign__in=campaigns).iterator(chunk_size=5000):
        yield LedgerEntry(
            key=f"bench:spend:{stat.pk}",
            kind="media_spend",
            amount=-stat.spend,
            currency=currency[stat.offer_id],
            day=stat.date,
            campaign_id=stat.campaign_id,
            offer_id=stat.offer_id,
            traffic_source_id=stat.traffic_source_id,
        )


def _day_of(column: str) -> str:
    """The local day of a timestamp column, as TruncDate() computes it (SQLite stores UTC)."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %(zone)s)::date"
    return f"date({column})"


def _date(column: str) -> str:
    # SQLite hands a date column to Python as a date but date() as text: the same text as the leads' day.
    return column if connection.vendor == "postgresql" else f"date({column})"


def _groupings() -> dict[str, tuple[list[str], int | None, tuple[str, ...], dict[str, tuple[str, str]]]]:
    """Per grouping: report()'s group_by, the days it covers (None: the whole year), the row columns of
    its key, and per table of the floor the SQL of the group columns and the join it needs (leads l,
    ledger entries e, daily stats s, clicks k)."""
    campaign_day = {
        "leads": (f"l.campaign_id, {_day_of('l.created_at')}", ""),
        "ledger": (f"e.campaign_id, {_date('e.day')}", ""),
        "stats": (f"s.campaign_id, {_date('s.date')}", ""),
        "clicks": (f"k.campaign_id, {_day_of('k.created_at')}", ""),
    }
    return {
        "campaign x day, 30 days": (["campaign", "day"], 30, ("campaign_id", "day"), campaign_day),
        "campaign x day": (["campaign", "day"], None, ("campaign_id", "day"), campaign_day),
        "traffic source kind": (
            ["traffic_source_kind"],
            None,
            ("traffic_source_kind",),
            {
                "leads": ("t.kind", "JOIN campaigns_trafficsource t ON t.id = l.traffic_source_id"),
                "ledger": ("t.kind", "JOIN campaigns_trafficsource t ON t.id = e.traffic_source_id"),
                "stats": ("t.kind", "JOIN campaigns_trafficsource t ON t.id = s.traffic_source_id"),
                "clicks": ("t.kind", "JOIN campaigns_trafficsource t ON t.id = k.traffic_source_id"),
            },
        ),
        "day": (
            ["day"],
            None,
            ("day",),
            {
                "leads": (_day_of("l.created_at"), ""),
                "ledger": (_date("e.day"), ""),
                "stats": (_date("s.date"), ""),
                "clicks": (_day_of("k.created_at"), ""),
            },
        ),
    }


def _floor(tables: dict[str, tuple[str, str]], width: int, params: dict) -> dict[tuple, dict]:
    """The report's figures from four GROUP BY queries over the raw tables (leads, ledger entries, daily
    stats, clicks) through a bare cursor, merged into one dict per (group..., currency): width columns."""
    positions = ", ".join(str(position) for position in range(1, width + 1))
    leads_group, leads_join = tables["leads"]
    ledger_group, ledger_join = tables["ledger"]
    stats_group, stats_join = tables["stats"]
    clicks_group, clicks_join = tables["clicks"]
    rows: dict[tuple, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT {leads_group}, o.currency, {LEAD_FIGURES}
            FROM leads_lead l JOIN campaigns_offer o ON o.id = l.offer_id {leads_join}
            WHERE NOT l.is_test AND l.created_at >= %(start)s AND l.created_at < %(end)s
            GROUP BY {positions}""",  # noqa: S608  SQL of this module
            params,
        )
        for found in cursor.fetchall():
            rows[found[:width]] = dict(zip(LEAD_NAMES, found[width:], strict=True))
        kinds = ", ".join(f"'{kind}'" for kind in MONEY_KINDS)
        cursor.execute(
            f"""SELECT {ledger_group}, o.currency, e.currency, {LEDGER_FIGURES}
            FROM leads_ledgerentry e JOIN campaigns_offer o ON o.id = e.offer_id {ledger_join}
            WHERE e.kind IN ({kinds}) AND e.day >= %(date_from)s AND e.day <= %(date_to)s
            GROUP BY {positions}, {width + 1}""",  # noqa: S608  SQL of this module
            params,
        )
        for found in cursor.fetchall():
            figures = dict(zip(MONEY_NAMES, found[width + 1 :], strict=True))
            if found[width] == found[width - 1]:
                rows.setdefault(found[:width], {}).update(figures)
            else:  # booked in another currency than the offer's: listed apart
                net = sum((_money(figures[name]) for name in ("lead_revenue", "sale_revenue")), Decimal("0"))
                net -= sum((_money(figures[name]) for name in ("media_spend", "supplier_cost")), Decimal("0"))
                rows.setdefault(found[:width], {}).setdefault("money_other_currencies", {})[found[width]] = net
        cursor.execute(
            f"""SELECT {stats_group}, o.currency, sum(s.impressions), sum(s.clicks)
            FROM campaigns_dailystat s JOIN campaigns_offer o ON o.id = s.offer_id {stats_join}
            WHERE s.date >= %(date_from)s AND s.date <= %(date_to)s GROUP BY {positions}""",  # noqa: S608  SQL of this module
            params,
        )
        for found in cursor.fetchall():
            rows.setdefault(found[:width], {}).update(zip(STAT_NAMES, found[width:], strict=True))
        cursor.execute(
            f"""SELECT {clicks_group}, o.currency, count(*)
            FROM campaigns_click k JOIN campaigns_offer o ON o.id = k.offer_id {clicks_join}
            WHERE k.created_at >= %(start)s AND k.created_at < %(end)s GROUP BY {positions}""",  # noqa: S608  SQL of this module
            params,
        )
        for found in cursor.fetchall():
            rows.setdefault(found[:width], {})["tracked_clicks"] = found[width]
    return rows


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _assert_same(rows: list[dict], floor: dict[tuple, dict], key_columns: tuple[str, ...]) -> None:
    """Every row of the report has the floor's figures (money to the cent: SQLite sums floats)."""
    floor = {key: figures for key, figures in floor.items() if set(figures) != {"money_other_currencies"}}
    assert len(rows) == len(floor), (len(rows), len(floor))
    expected_rows = {tuple(str(value) for value in key): figures for key, figures in floor.items()}
    for row in rows:
        key = tuple(str(row[column]) for column in (*key_columns, "currency"))
        expected = expected_rows[key]
        got = {name: row[name] for name in (*COUNT_NAMES, "impressions", "clicks", "tracked_clicks", "sold_leads")}
        assert got == {name: expected.get(name) or 0 for name in got}, (key, got, expected)
        for name in ("lead_revenue", "sale_revenue", "media_spend", "supplier_cost"):
            assert abs(row[name] - _money(expected.get(name))) <= Decimal("0.01"), (key, name, row[name], expected)
        other = row.get("money_other_currencies", {})
        expected_other = expected.get("money_other_currencies", {})
        assert other.keys() == expected_other.keys(), (key, other, expected_other)
        for currency, amount in other.items():
            assert abs(amount - expected_other[currency]) <= Decimal("0.02"), (key, other, expected_other)


def _best_of_three(function) -> tuple[object, float, float]:
    """function()'s result, its best time of three, and the time that run spent executing SQL."""
    best = (None, float("inf"), 0.0)
    for _ in range(3):
        in_sql = [0.0]

        def timing(execute, sql, params, many, context, in_sql=in_sql):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                in_sql[0] += time.perf_counter() - started

        with connection.execute_wrapper(timing):
            started = time.perf_counter()
            result = function()
            elapsed = time.perf_counter() - started
        if elapsed < best[1]:
            best = (result, elapsed, in_sql[0])
    return best


def prepare() -> dict:
    """Store the campaigns, leads, daily stats and clicks; the period's bounds as the floor's parameters."""
    advertisers = {name: Advertiser.objects.create(name=name) for name in dict.fromkeys(a for a, _, _ in OFFERS)}
    offers = [
        Offer.objects.create(advertiser=advertisers[advertiser], name=name, currency=currency)
        for advertiser, name, currency in OFFERS
    ]
    sources = [TrafficSource.objects.create(name=f"Bench report {name}", kind=kind) for kind, name in SOURCES]
    campaigns = Campaign.objects.bulk_create(
        Campaign(
            name=f"Bench report {index}",
            slug=f"bench-report-{index}",
            traffic_source=sources[index % len(sources)],
            offer=offers[index % len(offers)],
            status="active",
        )
        for index in range(CAMPAIGNS)
    )
    # A year that ends yesterday, so the other benchmarks' leads and clicks (made now) stay out of it.
    zone = timezone.get_current_timezone()
    date_to = timezone.localdate() - datetime.timedelta(days=1)
    date_from = date_to - datetime.timedelta(days=DAYS - 1)
    start = datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)

    started = time.perf_counter()
    if connection.vendor == "postgresql":
        _fill_postgresql(campaigns, start, date_from)
    else:
        _fill_sqlite(campaigns, start, date_from)
        assert timezone.get_current_timezone_name() == "UTC", "the SQLite floor reads days in UTC"
    print(
        f"reports: {LEADS:,} leads, {CAMPAIGNS * DAYS:,} daily stats ({CAMPAIGNS} campaigns x {DAYS} days), "
        f"{CLICKS:,} clicks and {LedgerEntry.objects.count():,} ledger entries stored in "
        f"{time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    buckets = rollups_rebuild()
    print(f"reports: rollups rebuilt from the raw rows in {time.perf_counter() - started:.1f} s ({buckets:,} buckets)")
    return {
        "start": start,
        "end": end,
        "date_from": date_from,
        "date_to": date_to,
        "zone": timezone.get_current_timezone_name(),
    }


def _period(params: dict, days: int | None) -> dict:
    if days is None:
        return params
    zone = timezone.get_current_timezone()
    date_from = params["date_to"] - datetime.timedelta(days=days - 1)
    return {**params, "date_from": date_from, "start": datetime.datetime.combine(date_from, datetime.time.min, zone)}


def _timed_get(client, url: str, query: dict | None = None) -> tuple[float, int]:
    """Best of three seconds of a GET (after one to warm up), and the queries of the last."""
    from django.test.utils import CaptureQueriesContext

    assert client.get(url, query).status_code == 200
    best = float("inf")
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, query)
            best = min(best, time.perf_counter() - started)
        assert response.status_code == 200
    return best, len(queries.captured_queries)


def _report_pages(period: dict, floor_time: float) -> list[Figure]:
    """The API report and the admin report page, campaign by day over the period, against the floor."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import override_settings

    staff = get_user_model().objects.create_superuser("bench-reports", "reports@example.com", "x")
    client = Client()
    client.force_login(staff)
    days = {"date_from": period["date_from"].isoformat(), "date_to": period["date_to"].isoformat()}
    figures = []
    with override_settings(ALLOWED_HOSTS=["*"]):
        for label, url, query in (
            ("API report", "/api/v1/reports/", {**days, "group_by": "campaign,day"}),
            ("admin report page", "/admin/reports/", {**days, "group_by": "campaign", "then_by": "day"}),
        ):
            seconds, queries = _timed_get(client, url, query)
            figures.append(
                Figure(
                    f"Reports: {label}, campaign x day, 30 days",
                    seconds,
                    "s",
                    floor_time,
                    "hand-written GROUP BY",
                    0.5,
                    True,
                )
            )
            print(
                f"reports: {label}, campaign x day over 30 days: {seconds:.3f} s, {queries} queries vs {floor_time:.3f} s "
                f"hand-written GROUP BY (ratio {seconds / floor_time:.3f}; target <= 0.5)"
            )
    return figures


def _admin_pages() -> list[Figure]:
    """The admin index of a Marketing user (the dashboard), and a sales rep's own lead list (a quarter
    of all leads are theirs), each against a stock ModelAdmin changelist of the same leads (a
    superuser, default ordering, exact counts), best of three, with their queries."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.test.utils import override_settings

    users = get_user_model()
    marketer = users.objects.create_user("bench-marketer", is_staff=True)
    marketer.groups.add(Group.objects.get(name="Marketing"))
    rep = users.objects.create_user("bench-rep", is_staff=True)
    rep.groups.add(Group.objects.get(name="Sales"))
    superuser = users.objects.create_superuser("bench-admin", "bench@example.com", "x")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE leads_lead SET assigned_to_id = %s WHERE id %% 4 = 0", [rep.pk])
        held = cursor.rowcount
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE leads_lead")
    stock = "/bench/stock-admin/leads/lead/"
    figures = {}
    with override_settings(ROOT_URLCONF="bench.urls", ALLOWED_HOSTS=["*"]):
        for label, user, url, query in (
            ("admin index (Marketing)", marketer, "/admin/", None),
            ("stock changelist of leads", superuser, stock, None),
            ("sales rep's own leads", rep, "/admin/leads/lead/", {"assigned": "me"}),
            ("sales rep's My leads (open)", rep, "/admin/leads/lead/", {"assigned": "me", "open": "yes"}),
            ("stock changelist of the rep's leads", superuser, stock, {"assigned_to__id__exact": str(rep.pk)}),
        ):
            client = Client()
            client.force_login(user)
            figures[label] = _timed_get(client, url, query)
    (index, index_queries), (floor, floor_queries) = (
        figures["admin index (Marketing)"],
        figures["stock changelist of leads"],
    )
    print(
        f"reports: admin index as Marketing {index:.3f} s, {index_queries} queries vs stock changelist of leads "
        f"{floor:.3f} s, {floor_queries} queries (ratio index / stock {index / floor:.2f}; target <= 1.0)"
    )
    results = [Figure("Admin index as Marketing", index, "s", floor, "stock changelist of leads", 1.0, True)]
    rep_floor, rep_floor_queries = figures["stock changelist of the rep's leads"]
    for label in ("sales rep's own leads", "sales rep's My leads (open)"):
        seconds, queries = figures[label]
        print(
            f"admin: {label} ({held:,} leads are the rep's) {seconds:.3f} s, {queries} queries vs stock changelist "
            f"of the same rows {rep_floor:.3f} s, {rep_floor_queries} queries "
            f"(ratio {seconds / rep_floor:.2f}; target <= 1.5, <= 12 queries, no exact count)"
        )
        results.append(Figure(f"Admin: {label}", seconds, "s", rep_floor, "stock changelist, same rows", 1.5, True))
    return results


def run(timed) -> list[Figure]:
    params = prepare()
    figures = []
    # PostgreSQL's execute() returns with the whole result; SQLite's computes rows as they are fetched.
    sql_shown = connection.vendor == "postgresql"
    for label, (group_by, days, key_columns, tables) in _groupings().items():
        period = _period(params, days)

        def from_rollups(group_by=group_by, period=period):
            return report(date_from=period["date_from"], date_to=period["date_to"], group_by=group_by)

        def from_raw(group_by=group_by, period=period):
            return report(date_from=period["date_from"], date_to=period["date_to"], group_by=group_by, from_raw=True)

        rows, selector_time, selector_sql = _best_of_three(from_rollups)
        raw_rows, raw_time, _ = _best_of_three(from_raw)
        width = len(key_columns) + 1  # and the currency
        floor, floor_time, floor_sql = _best_of_three(
            lambda tables=tables, width=width, period=period: _floor(tables, width, period)
        )
        _assert_same(rows, floor, key_columns)
        assert rows == raw_rows, "the report from rollups differs from the report from raw rows"
        if days == 30:
            month = (period, floor_time)
        print(
            f"reports: by {label}: {len(rows):,} rows in {selector_time:.3f} s through report() from rollups"
            + (f" ({selector_sql:.3f} s in SQL)" if sql_shown else "")
            + f", {raw_time:.2f} s from raw rows, vs {floor_time:.2f} s hand-written GROUP BY over the raw tables"
            + (f" ({floor_sql:.2f} s in SQL)" if sql_shown else "")
            + f" (report / floor {selector_time / floor_time:.3f}; target <= 0.5); same figures in every row"
        )
        figures.append(
            Figure(f"Reports: by {label}", selector_time, "s", floor_time, "hand-written GROUP BY", 0.5, True)
        )
    return [*figures, *_report_pages(*month), *_admin_pages()]

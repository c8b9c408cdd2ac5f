"""Buyers' suppression lists: checking a lead against a buyer's list of 1,000,000 hashes (the issue's
size; BENCH_SUPPRESSION_HASHES to change it) is one query on the list's unique (buyer, kind, hash)
index. The plan is read with EXPLAIN on PostgreSQL and must use that index and no sequential scan; the
check's rate is measured against a floor of the bare indexed lookup of one hash, in the same run.

A second buyer holds a quarter as many hashes, and the check asks about both buyers at once, as
delivery routing does for the buyers of an offer.
"""

import os
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.figures import Figure
from campaigns.models import Advertiser
from leads.models import BuyerSuppression, Lead
from leads.selectors import lead_contact_hashes, suppressed_advertiser_ids
from leads.services.contact_hashes import email_hash

HASHES = int(os.environ.get("BENCH_SUPPRESSION_HASHES", "1000000"))
CHECKS = int(os.environ.get("BENCH_SUPPRESSION_CHECKS", "3000"))
INDEX = "buyer_suppression_unique_hash"


def _fill(advertiser: Advertiser, count: int) -> None:
    """count email hashes of p<n>@example.com for the buyer (one INSERT ... SELECT on PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {BuyerSuppression._meta.db_table} (advertiser_id, kind, hash, created_at)
                SELECT %s, 'email', encode(sha256(('p' || n || '@example.com')::bytea), 'hex'), now()
                FROM generate_series(0, %s - 1) AS n""",  # noqa: S608  the model's own table name
                [advertiser.pk, count],
            )
            cursor.execute(f"ANALYZE {BuyerSuppression._meta.db_table}")
        return
    BuyerSuppression.objects.bulk_create(
        (
            BuyerSuppression(advertiser=advertiser, kind="email", hash=email_hash(f"p{n}@example.com"))
            for n in range(count)
        ),
        batch_size=5000,
    )


def _plan(sql: str, params=None) -> str:
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {sql}", params)
        return "\n".join(str(row[0] if connection.vendor == "postgresql" else row[-1]) for row in cursor.fetchall())


def run(timed) -> list[Figure]:
    big, small = Advertiser.objects.create(name="Bench big list"), Advertiser.objects.create(name="Bench small list")
    started = time.perf_counter()
    _fill(big, HASHES)
    _fill(small, HASHES // 4)
    filled = time.perf_counter() - started
    buyers = [big.pk, small.pk]
    # Leads are never saved: the check reads only their email, phone and country.
    leads = [
        Lead(email=f"p{n * 7919 % (HASHES * 2)}@example.com", phone="+16505551212", country="US") for n in range(CHECKS)
    ]

    on_both = Lead(email="p0@example.com", phone="+16505551212", country="US")
    with CaptureQueriesContext(connection) as queries:
        found = suppressed_advertiser_ids(on_both, buyers)
    assert len(queries) == 1, f"the check took {len(queries)} queries"
    sql = queries.captured_queries[0]["sql"]
    plan = _plan(sql)
    if connection.vendor == "postgresql":
        assert INDEX in plan and "Seq Scan" not in plan, f"the check does not use {INDEX}:\n{plan}"
    assert found == {big.pk, small.pk}, found

    project = timed(lambda index: suppressed_advertiser_ids(leads[index], buyers), CHECKS)
    hashes = [email_hash(lead.email) for lead in leads]
    bare = f"SELECT 1 FROM {BuyerSuppression._meta.db_table} WHERE advertiser_id = %s AND kind = 'email' AND hash = %s"  # noqa: S608
    with connection.cursor() as cursor:

        def lookup(index: int) -> None:
            cursor.execute(bare, [big.pk, hashes[index]])
            cursor.fetchall()

        floor = timed(lookup, CHECKS)
        floor_plan = _plan(bare, [big.pk, hashes[0]])
    # Where the check's time goes besides the database: hashing the lead (phone parsing), and the ORM.
    hashing = timed(lambda index: lead_contact_hashes(leads[index]), CHECKS)
    orm = timed(
        lambda index: BuyerSuppression.objects.filter(advertiser_id=big.pk, kind="email", hash=hashes[index]).exists(),
        CHECKS,
    )
    print(
        f"suppression: {HASHES:,} + {HASHES // 4:,} hashes filled in {filled:.1f} s; "
        f"{project:,.0f} checks/s ({1000 / project:.3f} ms; 2 buyers, email and phone) vs {floor:,.0f} bare "
        f"lookups/s ({1000 / floor:.3f} ms; 1 buyer, 1 hash); the same lookup through the ORM "
        f"{1000 / orm:.3f} ms; hashing a lead's email and phone {1000 / hashing:.3f} ms; "
        f"one query, planned as:\n{plan}\nbare lookup planned as:\n{floor_plan}"
    )
    return [
        Figure(
            f"Suppression check, {HASHES:,}-hash list ({connection.vendor})",
            project,
            "checks/s",
            floor=floor,
            floor_label="bare indexed lookup of one hash",
        ),
        Figure(
            "Suppression check vs the same lookup through the ORM",
            project,
            "checks/s",
            floor=orm,
            floor_label="`BuyerSuppression.objects.filter(...).exists()` of one hash",
        ),
        Figure("Suppression check: queries", len(queries), "queries", target=1, lower_is_better=True),
    ]

"""Retention: erasing the personal data of BENCH_RETENTION_LEADS due leads (the issue's figure is
1,000,000, the default) with the daily job, against a floor of one bare UPDATE setting the same lead
columns to blank and NULL on the same rows, in the same run.

The job does what an erasure on request does, set-based per batch of RETENTION_BATCH_SIZE (one
UPDATE of the leads per batch, a statement per related table, the erased events inserted in bulk),
each batch its own transaction taking its rows with SKIP LOCKED. The leads here have one timeline
event each and no notes or deliveries, so most related statements find nothing: the ratio is the
price of batches, locks and the erased event per lead over the one statement. A tenth of them are
invalid, with a reason that quotes the address (rewritten to its code).
"""

import os
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from bench.bench_reports import indexes_built_after, insert_select
from bench.figures import Figure
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead, LeadEvent
from leads.services.erasure import PERSONAL_FIELDS
from leads.services.retention import retention_run

DUE = int(os.environ.get("BENCH_RETENTION_LEADS", "1000000"))
BATCH = int(os.environ.get("BENCH_RETENTION_BATCH", "1000"))
KEPT_DAYS = 30
# The floor: the same columns blanked (and the lead marked erased) in one statement.
BARE_UPDATE = (
    "UPDATE leads_lead SET email = '', phone = '', first_name = '', last_name = '', company = '', zip_code = '', "
    "message = '', answers = '{}', raw_data = '{}', ip = NULL, user_agent = '', consent_ip = NULL, "
    "status_reason = '', erased_at = %(now)s, updated_at = %(now)s "
    "WHERE offer_id = %(offer)s AND erased_at IS NULL AND created_at < %(before)s"
)
# The person's data back on the same rows (between the floor and the job), as the insert wrote it.
PERSON = {
    "email": "'ret' || {n} || '@example.com'",
    "phone": "'+1650555' || lpad(mod({n}, 10000)::text, 4, '0')",
    "first_name": "'Ann'",
    "last_name": "'Lee ' || {n}",
    "company": "'Lee Roofing'",
    "zip_code": "'94025'",
    "message": "'Call me on 650 555 ' || {n}",
    "answers": """'{{"budget": "about 5000"}}'::jsonb""",
    "raw_data": """jsonb_build_object('email', 'Ret' || {n} || '@Example.com')""",
    "ip": "'203.0.113.9'::inet",
    "user_agent": "'Mozilla/5.0 (X11; Linux x86_64)'",
    "consent_ip": "'203.0.113.9'::inet",
    "status_reason": "''",
    "validity": "CASE WHEN mod({n}, 10) = 0 THEN 'invalid' ELSE 'valid' END",
    "validity_reasons": """CASE WHEN mod({n}, 10) = 0 THEN jsonb_build_array('invalid_email: ret' || {n} || '@@x')
        ELSE '[]'::jsonb END""",
}
assert set(PERSONAL_FIELDS) <= set(PERSON), "the bench must fill every column erasure blanks"


def _add_due_leads(campaign: Campaign, captured) -> None:
    if connection.vendor == "postgresql":
        insert_select(
            Lead,
            columns={
                "public_id": "gen_random_uuid()",
                "door": "'api'",
                "campaign_id": "%(campaign)s",
                "offer_id": "%(offer)s",
                "traffic_source_id": "%(source)s",
                "created_at": "%(captured)s",
                "country": "'US'",
                "lead_type": "'hard'",
                "qualification": "'qualified'",
                "consent": "true",
                **{column: sql.format(n="r.n") for column, sql in PERSON.items()},
            },
            source="generate_series(1, %(due)s) AS r(n)",
            params={
                "campaign": campaign.pk,
                "offer": campaign.offer_id,
                "source": campaign.traffic_source_id,
                "captured": captured,
                "due": DUE,
            },
        )
        return
    with transaction.atomic():
        Lead.objects.bulk_create(
            (
                Lead(
                    door="api",
                    campaign=campaign,
                    offer_id=campaign.offer_id,
                    traffic_source_id=campaign.traffic_source_id,
                    created_at=captured,
                    email=f"ret{n}@example.com",
                    phone=f"+1650555{n % 10000:04d}",
                    first_name="Ann",
                    last_name=f"Lee {n}",
                    company="Lee Roofing",
                    zip_code="94025",
                    message=f"Call me on 650 555 {n}",
                    answers={"budget": "about 5000"},
                    raw_data={"email": f"Ret{n}@Example.com"},
                    ip="203.0.113.9",
                    user_agent="Mozilla/5.0 (X11; Linux x86_64)",
                    consent_ip="203.0.113.9",
                    country="US",
                    lead_type="hard",
                    validity="invalid" if n % 10 == 0 else "valid",
                    validity_reasons=[f"invalid_email: ret{n}@@x"] if n % 10 == 0 else [],
                    qualification="qualified",
                    consent=True,
                )
                for n in range(1, DUE + 1)
            ),
            batch_size=5000,
        )


def _restore_person(offer_id: int) -> None:
    """The floor erased the rows: give them their data back (not timed)."""
    if connection.vendor == "postgresql":
        sets = ", ".join(f"{column} = {sql.format(n='id')}" for column, sql in PERSON.items())
        vacuum = "VACUUM ANALYZE leads_lead, leads_leadevent"
    else:  # SQLite: the contact columns are enough to tell the job erased them again
        sets = "email = 'ret' || id || '@example.com', phone = '+1650555' || id, ip = '203.0.113.9'"
        vacuum = ""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE leads_lead SET {sets}, erased_at = NULL WHERE offer_id = %s", [offer_id])  # noqa: S608
        if vacuum:
            cursor.execute(vacuum)


class StatementTimes:
    """Seconds spent in the database per kind of statement (its first words and table)."""

    def __init__(self) -> None:
        self.by_head: dict[str, list[float]] = {}

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            head = " ".join(sql.split()[:4])[:70]
            entry = self.by_head.setdefault(head, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    def slowest(self, count: int) -> list[tuple[str, tuple[int, float]]]:
        ranked = sorted(self.by_head.items(), key=lambda item: -item[1][1])[:count]
        return [(head, (int(calls), seconds)) for head, (calls, seconds) in ranked]


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Bench retention", kind="social")
    offer = Offer.objects.create(
        advertiser=Advertiser.objects.create(name="Bench retention"), name="Retention", lead_retention_days=KEPT_DAYS
    )
    campaign = Campaign.objects.create(
        name="Bench retention", slug="bench-retention", traffic_source=source, offer=offer
    )
    now = timezone.now()
    captured = now - timedelta(days=KEPT_DAYS + 1)
    started = time.perf_counter()
    with indexes_built_after(Lead._meta.db_table), indexes_built_after(LeadEvent._meta.db_table):
        _add_due_leads(campaign, captured)
        # Every lead has its timeline (here one event each), so the timeline's statistics are those
        # of a table in use, not of an empty one the run fills.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO leads_leadevent (lead_id, kind, created_at, data) "
                "SELECT id, 'captured', created_at, '{}' FROM leads_lead WHERE offer_id = %s",
                [offer.pk],
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE leads_lead, leads_leadevent")
    print(f"retention: {DUE:,} due leads stored in {time.perf_counter() - started:.0f} s")

    # The floor first: the job then runs on the table the floor and the restore left (more pages).
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BARE_UPDATE, {"now": now, "offer": offer.pk, "before": now - timedelta(days=KEPT_DAYS)})
        assert cursor.rowcount == DUE, cursor.rowcount
    bare_time = time.perf_counter() - started
    _restore_person(offer.pk)
    assert Lead.objects.filter(offer=offer, erased_at__isnull=True).count() == DUE

    statements = StatementTimes()
    started = time.perf_counter()
    with connection.execute_wrapper(statements):
        done = retention_run(now=now, batch_size=BATCH)
    job_time = time.perf_counter() - started
    assert done["leads erased"] == DUE, done
    assert not Lead.objects.filter(offer=offer).exclude(email="").exists()
    print(
        f"retention: erased {DUE:,} due leads in {job_time:.1f} s ({DUE / job_time:,.0f} leads/s, batches of "
        f"{BATCH:,}) vs {bare_time:.1f} s for one bare UPDATE of the same columns on the same rows "
        f"({DUE / bare_time:,.0f} leads/s); the job takes {job_time / bare_time:.2f}x the floor's time"
    )
    print(f"retention: where the job's time went ({job_time:.1f} s in all, the rest in Python):")
    for head, (count, seconds) in statements.slowest(8):
        print(f"  {seconds:6.1f} s in {count:,} x {head}")
    return [
        Figure(
            f"Retention: erase {DUE:,} due leads, batches of {BATCH:,}",
            DUE / job_time,
            "leads/s",
            DUE / bare_time,
            "one bare UPDATE of the same columns",
        )
    ]

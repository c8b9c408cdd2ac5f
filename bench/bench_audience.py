"""Audience export: rows per second streaming a Meta export, and peak Python memory for an
audience five times larger (it should not grow with the audience: rows are streamed in chunks).

With BENCH_AUDIENCE_LARGE (the issue's figure is 1,000,000), also an export of that many leads,
against a floor of reading the same rows through a bare server-side cursor and SHA-256 hashing the
same normalised fields, with its peak memory: Python's (tracemalloc) and the process's (peak RSS
growth, target under 200 MB), each measured in a forked process of its own.
"""

import hashlib
import multiprocessing
import os
import resource
import time
import tracemalloc

import phonenumbers
from django.core.files.storage import default_storage
from django.db import connection, connections, transaction
from django.utils import timezone

from bench.bench_reports import indexes_built_after, insert_select
from bench.figures import Figure
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead
from nurture.models import Audience, Suppression
from nurture.services.audiences import CHUNK, audience_export_request, audience_export_run, audience_leads

SMALL = int(os.environ.get("BENCH_AUDIENCE_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_AUDIENCE_LARGE", "0"))
TARGET_MB = 200
# The large audience's contacts, by country: a valid number pattern for each (E.164 as captured).
COUNTRY_PHONES = (("US", "+1650555", 4), ("GB", "+44207", 7), ("DE", "+4930", 8), ("FR", "+331", 8))
FIRST_NAMES = ("Jo", "ANNA", "Luis ", "marie")
LAST_NAMES = ("Doe", "SMITH", " Müller", "durand")
# What the Meta format reads, with audience_leads()'s rule written by hand.
FLOOR_SQL = """SELECT l.email, l.phone, l.first_name, l.last_name, l.country FROM leads_lead l
    WHERE l.consent AND NOT l.is_test AND NOT l.is_duplicate AND l.validity <> 'invalid'
    AND NOT EXISTS (SELECT 1 FROM nurture_suppression s WHERE s.email = l.email)"""


def _add_leads(campaign, start: int, count: int) -> None:
    now = timezone.now()
    Lead.objects.bulk_create(
        (
            Lead(
                door="api",
                campaign=campaign,
                offer=campaign.offer,
                traffic_source=campaign.traffic_source,
                email=f"aud{index}@example.com",
                phone=f"+1650555{index % 10000:04d}",
                first_name="Jo",
                last_name="Doe",
                country="US",
                lead_type="hard",
                validity="valid",
                qualification="qualified",
                consent=True,
                created_at=now,
            )
            for index in range(start, start + count)
        ),
        batch_size=5000,
    )


def _export(audience, period) -> tuple[float, int, int]:
    export = audience_export_request(audience=audience, format="meta", mode="full", period=period)
    tracemalloc.start()
    started = time.perf_counter()
    export = audience_export_run(export_id=export.pk)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, export.rows, peak


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Bench audience", kind="social")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench audience"), name="Audience")
    campaign = Campaign.objects.create(name="Bench audience", slug="bench-audience", traffic_source=source, offer=offer)
    audience = Audience.objects.create(name="Bench audience")
    _add_leads(campaign, 0, SMALL)
    _, small_rows, small_peak = _export(audience, "small")
    _add_leads(campaign, SMALL, SMALL * 4)
    large_time, large_rows, large_peak = _export(audience, "large")
    print(
        f"audience: Meta export of {large_rows:,} leads at {large_rows / large_time:,.0f} rows/s; peak Python memory "
        f"{small_peak / 1e6:.1f} MB for {small_rows:,} rows vs {large_peak / 1e6:.1f} MB for {large_rows:,} "
        f"(ratio {large_peak / small_peak:.2f} for 5x the rows)"
    )
    figures = [
        Figure(
            f"Audience: peak Python memory, {large_rows:,} rows / {small_rows:,}",
            large_peak / small_peak,
            "x",
        )
    ]
    if LARGE:
        figures += _large(audience, campaign)
    return figures


def _add_large(campaign, start: int, count: int, *, consent: bool = True, email: str = "Aud.{n}@Example.com") -> None:
    """count leads numbered from start, of four countries with their names and phones in mixed case."""
    if connection.vendor == "postgresql":
        phone = " ".join(
            f"WHEN {index} THEN '{prefix}' || lpad(mod(r.n, {10**digits})::text, {digits}, '0')"
            for index, (_, prefix, digits) in enumerate(COUNTRY_PHONES)
        )
        insert_select(
            Lead,
            columns={
                "public_id": "gen_random_uuid()",
                "door": "'api'",
                "campaign_id": "%(campaign)s",
                "offer_id": "%(offer)s",
                "traffic_source_id": "%(source)s",
                "email": "replace(%(email)s, '{n}', r.n::text)",
                "phone": f"CASE mod(r.n, {len(COUNTRY_PHONES)}) {phone} END",
                "first_name": "(%(first_names)s::text[])[1 + mod(r.n / 7, 4)]",
                "last_name": "(%(last_names)s::text[])[1 + mod(r.n / 3, 4)]",
                "country": "(%(countries)s::text[])[1 + mod(r.n, 4)]",
                "lead_type": "'hard'",
                "validity": "'valid'",
                "qualification": "'qualified'",
                "consent": "%(consent)s",
            },
            source="generate_series(%(start)s, %(end)s - 1) AS r(n)",
            params={
                "campaign": campaign.pk,
                "offer": campaign.offer_id,
                "source": campaign.traffic_source_id,
                "email": email,
                "first_names": list(FIRST_NAMES),
                "last_names": list(LAST_NAMES),
                "countries": [country for country, _, _ in COUNTRY_PHONES],
                "consent": consent,
                "start": start,
                "end": start + count,
            },
        )
        return

    def lead(n: int) -> Lead:
        country, prefix, digits = COUNTRY_PHONES[n % len(COUNTRY_PHONES)]
        return Lead(
            door="api",
            campaign=campaign,
            offer_id=campaign.offer_id,
            traffic_source_id=campaign.traffic_source_id,
            email=email.replace("{n}", str(n)),
            phone=f"{prefix}{n % 10**digits:0{digits}d}",
            first_name=FIRST_NAMES[n // 7 % 4],
            last_name=LAST_NAMES[n // 3 % 4],
            country=country,
            lead_type="hard",
            validity="valid",
            qualification="qualified",
            consent=consent,
        )

    with transaction.atomic():
        Lead.objects.bulk_create((lead(n) for n in range(start, start + count)), batch_size=5000)


def _in_child(function, *, trace: bool = False) -> tuple:
    """function()'s result, seconds, peak RSS growth and (traced) peak Python memory, run in a forked
    process: ru_maxrss is a high-water mark, so only a fresh process gives a clean figure."""
    connections.close_all()  # the child opens its own: two processes on one socket corrupt it
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child, args=(function, trace, sender))
    child.start()
    sender.close()
    outcome = receiver.recv()
    child.join()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _child(function, trace: bool, sender) -> None:
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the parent's RSS at the fork
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
        python_peak = tracemalloc.get_traced_memory()[1] if trace else None
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # KiB on Linux
        connections.close_all()
        sender.send((result, elapsed, rss_growth, python_peak))
    except Exception as error:
        sender.send(error)


def _export_large(audience, period: str, *, trace: bool = False) -> tuple:
    """_in_child()'s figures for a Meta export of the audience, its rows in place of a result."""
    export = audience_export_request(audience=audience, format="meta", mode="full", period=period)
    (rows, name), *figures = _in_child(lambda: _exported(audience_export_run(export_id=export.pk)), trace=trace)
    default_storage.delete(name)  # a million rows are hundreds of MB
    return rows, *figures


def _exported(export) -> tuple[int, str]:
    return export.rows, export.file.name


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def _meta_phone(phone: str, country: str) -> str:
    try:
        number = phonenumbers.parse(phone, country or None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def _floor(*, hashed: bool, e164: bool) -> int:
    """Rows read through a bare server-side cursor (a named one on PostgreSQL), SHA-256 hashing the
    Meta fields normalised as the export does (with the phone's E.164 parsing, or just without "+")."""
    rows = 0
    connection.ensure_connection()
    with transaction.atomic():  # a named cursor lives in a transaction
        raw = connection.connection
        cursor = raw.cursor(name="audience_floor") if connection.vendor == "postgresql" else raw.cursor()
        cursor.execute(FLOOR_SQL)
        while batch := cursor.fetchmany(CHUNK):
            rows += len(batch)
            if not hashed:
                continue
            for email, phone, first_name, last_name, country in batch:
                phone = _meta_phone(phone, country) if e164 else phone.lstrip("+")
                for value in (
                    email.strip().lower(),
                    phone,
                    first_name.strip().lower(),
                    last_name.strip().lower(),
                    country.lower(),
                ):
                    _sha256(value)
        cursor.close()
    return rows


def _large(audience, campaign) -> list[Figure]:
    started = time.perf_counter()
    missing = max(LARGE - audience_leads(audience).count(), 0)
    # Left out of the audience, so its rule has work to do: 1% without consent, 1% suppressed.
    left_out = LARGE // 100
    with indexes_built_after(Lead._meta.db_table):
        _add_large(campaign, 0, missing)
        _add_large(campaign, missing, left_out, consent=False)
        _add_large(campaign, missing + left_out, left_out, email="suppressed{n}@example.com")
    Suppression.objects.bulk_create(
        (
            Suppression(email=f"suppressed{n}@example.com", reason="unsubscribed")
            for n in range(missing + left_out, missing + 2 * left_out)
        ),
        batch_size=5000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE leads_lead, nurture_suppression")
    stored = time.perf_counter() - started

    rows, export_time, export_rss, _ = _export_large(audience, "large-timed")
    _, _, traced_rss, python_peak = _export_large(audience, "large-traced", trace=True)
    read_rows, read_time, _, _ = _in_child(lambda: _floor(hashed=False, e164=False))
    _, plain_time, _, _ = _in_child(lambda: _floor(hashed=True, e164=False))
    floor_rows, floor_time, floor_rss, _ = _in_child(lambda: _floor(hashed=True, e164=True))
    assert rows == LARGE == read_rows == floor_rows, (rows, LARGE, read_rows, floor_rows)
    print(
        f"audience: Meta export of {rows:,} leads (of {Lead.objects.count():,}, stored in {stored:.0f} s): "
        f"{export_time:.1f} s ({rows / export_time:,.0f} rows/s) vs {floor_time:.1f} s reading the same rows through "
        f"a bare server-side cursor and hashing the same normalised fields (ratio {floor_time / export_time:.2f}); "
        f"of the floor, {read_time:.1f} s reading and {plain_time:.1f} s hashing without the phone's E.164 parsing"
    )
    print(
        f"audience: memory exporting {rows:,} leads: peak RSS +{export_rss / 1e6:.1f} MB (target under {TARGET_MB} MB; "
        f"floor +{floor_rss / 1e6:.1f} MB), peak Python memory {python_peak / 1e6:.1f} MB (tracemalloc; "
        f"RSS +{traced_rss / 1e6:.1f} MB with tracing on)"
    )
    return [
        Figure(
            f"Audience: Meta export of {rows:,}",
            rows / export_time,
            "rows/s",
            rows / floor_time,
            "server-side cursor and hashing",
        ),
        Figure(
            f"Audience: peak RSS growth exporting {rows:,}",
            export_rss / 1e6,
            "MB",
            target=TARGET_MB,
            lower_is_better=True,
        ),
    ]

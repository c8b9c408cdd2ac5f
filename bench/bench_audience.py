"""Audience export: rows per second streaming a Meta export, and peak Python memory for an
audience five times larger (it should not grow with the audience: rows are streamed in chunks)."""

import os
import time
import tracemalloc

from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead
from nurture.models import Audience
from nurture.services.audiences import audience_export_request, audience_export_run

SMALL = int(os.environ.get("BENCH_AUDIENCE_SMALL", "10000"))


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


def run(timed) -> None:
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

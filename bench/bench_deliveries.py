"""Deliveries per second: a real Celery worker draining parked delivery entries to a local buyer, against
a bare pooled loop of the same signed POSTs with the same concurrency, to the same buyer.

- The buyer (bench/sinks.py) is a ThreadingHTTPServer speaking HTTP/1.1 keep-alive, in a process of
  its own.
- The floor: PARTNER_CALLS_CONCURRENCY threads sharing one urllib3 pool of PARTNER_CALLS_PER_DESTINATION
  connections that blocks when all are busy (the project's bounds to one destination), each signing
  a body built from the same leads (Standard Webhooks HMAC) and checking the buyer's JSON answer.
  Run before and after the project; the better of the two counts.
- The project: one worker process with the solo pool, as Procfile.dev runs the deliveries queue, so
  the same bounds as the floor. Deliveries are captured with their kind parked on a queue nobody
  reads, then dispatched at once; timed until every one is accepted. The worker first drains a batch
  of other deliveries, untimed, as the floor's threads and pool are warm when it is timed: a worker
  runs for hours, and its first batch's one-off costs (imports, first queries, connection pools)
  are not its throughput.

BENCH_DELIVERIES sets how many (default 4,000, a multiple of OUTBOX_BATCH_SIZE so no task tops up
with the other benchmarks' due entries). 1,000 took under a second: the first batch's preparation and
the last one's writes, which overlap nothing, and any hiccup of the machine weighed on the figure;
two runs of the same code differed by 0.1. BENCH_PROFILE_WORKER=path runs the worker under cProfile.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import urllib3
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench.figures import Figure
from bench.people import phone
from bench.servers import BASE_DIR, database_url, sink
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Delivery, DeliveryDestination, DeliveryRoute, Lead, OutboxEntry
from leads.services import CaptureContext, lead_capture, parse_submission
from leads.services.delivery_payload import mapped_payload, request_body
from leads.services.outbox import dispatch, follow_up_kind, register_follow_up
from leads.services.signing import destination_rotate_secret, signature

DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "4000"))
PROFILE = os.environ.get("BENCH_PROFILE_WORKER", "")


def _capture_parked(campaign, count: int = DELIVERIES) -> list[tuple[int, str]]:
    """Capture the leads with their deliveries on a queue nobody reads: (entry id, kind) to dispatch."""
    kind = follow_up_kind("delivery")
    register_follow_up(replace(kind, queue="bench-parked"))
    try:
        for index in range(count):
            lead_capture(
                campaign=campaign,
                submission=parse_submission(
                    {
                        "email": f"buyer.bench{index}@example.com",
                        "phone": phone(3_000_000 + index),
                        "country": "US",
                        "action": "quote",
                        "first_name": "Jo",
                        "last_name": "Doe",
                    }
                ),
                context=CaptureContext(door="api"),
            )
    finally:
        register_follow_up(kind)
    entries = list(
        OutboxEntry.objects.filter(kind="delivery", lead__campaign=campaign).order_by("pk").values_list("pk", "kind")
    )
    assert len(entries) == count, f"{len(entries)} deliveries for {count} leads"
    return entries


def _split(entries: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(a batch to warm the worker up with, the deliveries timed)."""
    return entries[: settings.OUTBOX_BATCH_SIZE], entries[settings.OUTBOX_BATCH_SIZE :]


def _floor(port: int, bodies: list[bytes], secret: str) -> float:
    """Signed POSTs per second with the project's bounds: PARTNER_CALLS_CONCURRENCY threads, at most
    PARTNER_CALLS_PER_DESTINATION at once to this buyer over its pool of keep-alive connections."""
    pool = urllib3.HTTPConnectionPool(
        "127.0.0.1", port, maxsize=settings.PARTNER_CALLS_PER_DESTINATION, block=True, retries=False
    )
    failures = []

    def post(body: bytes) -> None:
        msg_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
        }
        response = pool.urlopen("POST", "/leads", body=body, headers=headers, timeout=10)
        if response.status != 200 or json.loads(response.data)["status"] != "accepted":
            failures.append(response.status)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.PARTNER_CALLS_CONCURRENCY) as threads:
        list(threads.map(post, bodies))
    elapsed = time.perf_counter() - started
    pool.close()
    assert not failures, failures[:5]
    return len(bodies) / elapsed


def _worker(env: dict) -> tuple[subprocess.Popen, Path]:
    log = Path(tempfile.gettempdir()) / f"leadcrm-bench-delivery-worker-{os.getpid()}.log"
    profile = ("-m", "cProfile", "-o", PROFILE) if PROFILE else ()
    worker = subprocess.Popen(
        [
            *(sys.executable, *profile, "-m", "celery", "-A", "leadcrm", "worker", "--pool", "solo"),
            *("--queues", settings.PARTNER_CALLS_QUEUE, "--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("--loglevel", "INFO"),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60  # start-up is not what is measured
    while "ready." not in log.read_text():
        assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    return worker, log


def drain_through_worker(entries, env, done, warm_up=()) -> float:
    """Entries per second of a real worker draining them, from dispatch until `done` (a queryset of
    the finished work) counts them all. `warm_up`: entries the worker drains first, untimed (the
    timed ones are not due meanwhile, so no top-up takes them)."""
    if settings.CELERY_BROKER_URL.startswith("redis"):
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(settings.PARTNER_CALLS_QUEUE)  # earlier runs' tasks
    timed = OutboxEntry.objects.filter(pk__in=[pk for pk, _ in entries])
    # Earlier benchmarks' leads left follow-ups due (bench_leads alone leaves 1,006 deliveries): the
    # worker's top-up would drain them too, work the floor never does. They wait until the run is over.
    OutboxEntry.objects.filter(status=OutboxEntry.Status.PENDING, next_attempt_at__lte=timezone.now()).exclude(
        pk__in=[pk for pk, _ in (*entries, *warm_up)]
    ).update(next_attempt_at=timezone.now() + timedelta(days=1))
    if warm_up:
        timed.update(next_attempt_at=timezone.now() + timedelta(hours=1))
    worker, log = _worker(env)
    try:
        _wait(worker, log, done, len(warm_up), lambda: dispatch(warm_up))
        timed.update(next_attempt_at=timezone.now())
        started = time.perf_counter()
        _wait(worker, log, done, done.count() + len(entries), lambda: dispatch(entries))
        return len(entries) / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.unlink()


def _wait(worker, log, done, count: int, start) -> None:
    start()
    deadline = time.monotonic() + 600
    while done.count() < count:
        assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)


def _drain(entries, env, warm_up, destination) -> float:
    """Deliveries per second of the worker sending the entries, from dispatch to the last accepted.
    Counted by the buyer's deliveries alone (an index), not joined to the leads: the count runs every
    50 ms on the machine being measured."""
    accepted = Delivery.objects.filter(destination=destination, status=Delivery.Status.ACCEPTED)
    return drain_through_worker(entries, env, accepted, warm_up)


def run(timed) -> list[Figure]:
    assert DELIVERIES % settings.OUTBOX_BATCH_SIZE == 0, "BENCH_DELIVERIES must be a multiple of OUTBOX_BATCH_SIZE"
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    source = TrafficSource.objects.create(name="Bench delivery", kind="native")
    advertiser = Advertiser.objects.create(name="Bench buyer")
    offer = Offer.objects.create(advertiser=advertiser, name="Bench delivery")
    campaign = Campaign.objects.create(
        name="Bench delivery", slug="bench-delivery", traffic_source=source, offer=offer, status="active"
    )
    with sink("buyer") as port:
        destination = DeliveryDestination.objects.create(
            advertiser=advertiser,
            name="Bench CRM",
            url=f"http://127.0.0.1:{port}/leads",
            accept_json_path="status",
            accept_json_value="accepted",
            reference_json_path="id",
        )
        secret = destination_rotate_secret(destination=destination)
        DeliveryRoute.objects.create(offer=offer, destination=destination)
        started = time.perf_counter()
        warm_up, entries = _split(_capture_parked(campaign, settings.OUTBOX_BATCH_SIZE + DELIVERIES))
        captured = time.perf_counter() - started
        timed = Lead.objects.filter(outbox_entries__in=[pk for pk, _ in entries])
        leads = timed.select_related("campaign", "offer", "traffic_source")
        bodies = [request_body(destination, mapped_payload(lead, destination.field_mapping))[0] for lead in leads]
        connection.close()

        env = {**os.environ, "DATABASE_URL": database_url(), "DELIVERY_ALLOWED_HOSTS": "127.0.0.1"}
        floor_before = _floor(port, bodies, secret)
        rate = _drain(entries, env, warm_up, destination)
        floor_after = _floor(port, bodies, secret)
    floor = max(floor_before, floor_after)
    print(
        f"deliveries: {rate:,.0f} signed deliveries/s by one worker (solo pool) to a local buyer vs {floor:,.0f}/s "
        f"bare pooled loop of signed POSTs ({settings.PARTNER_CALLS_CONCURRENCY} threads, "
        f"{settings.PARTNER_CALLS_PER_DESTINATION} connections to the buyer; {floor_before:,.0f}/s before, "
        f"{floor_after:,.0f}/s after) (ratio {rate / floor:.2f}); {DELIVERIES:,} deliveries in batches of "
        f"{settings.OUTBOX_BATCH_SIZE}, broker {settings.CELERY_BROKER_URL.split(':')[0]}; "
        f"after a warm-up batch; captured in {captured:.1f} s "
        f"({(len(warm_up) + DELIVERIES) / captured:,.0f} leads/s through lead_capture())"
    )
    return [
        Figure(
            "Deliveries (one worker, solo pool)",
            rate,
            "deliveries/s",
            floor,
            f"bare pooled loop of signed POSTs, {settings.PARTNER_CALLS_CONCURRENCY} threads, "
            f"{settings.PARTNER_CALLS_PER_DESTINATION} per destination",
            0.5,
        )
    ]

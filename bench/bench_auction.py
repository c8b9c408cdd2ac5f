"""Ping/post auctions: 20 local buyers answering in 20-200 ms plus one that hangs, each on its own port
(bench/sinks.py bidders, a process of its own), every buyer's ping timeout 1 s.

- The project: auctions captured with their kind parked on a queue nobody reads, then dispatched at
  once to one real Celery worker (solo pool, as Procfile.dev runs the deliveries queue); timed until
  every auction has ended. Each auction pings the 21 buyers, ranks, posts to the winner, books the
  sale. Its p95 duration (Auction.duration_ms: first ping to the end) must stay within the largest
  ping timeout + 100 ms: the hanging buyer costs its timeout and no more.
- The floor: the same pings and posts as a bare thread-pool fan-out in this process, in the same
  run: AUCTIONS_AT_ONCE auctions at a time, each pinging the 21 buyers at once over pooled urllib3
  connections with the same 1 s timeout, taking the highest bid and posting to it. No database, no
  signing, no ranking rules. Run before and after the project; the better of the two counts.

BENCH_AUCTIONS sets how many (default 200, a multiple of OUTBOX_BATCH_SIZE).
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from decimal import Decimal

import urllib3
from django.conf import settings
from django.db import connection

from bench.bench_deliveries import drain_through_worker
from bench.figures import Figure
from bench.servers import BASE_DIR, database_url, free_port, wait_for_port
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Auction, DeliveryDestination, DeliveryRoute, OutboxEntry
from leads.services import CaptureContext, lead_capture, parse_submission
from leads.services.outbox import follow_up_kind, register_follow_up
from leads.services.signing import destination_rotate_secret

AUCTIONS = int(os.environ.get("BENCH_AUCTIONS", "200"))
LATENCIES_MS = [20 + round(index * 180 / 19) for index in range(20)]  # 20 ... 200 ms
HANGS = -1
TIMEOUT_MS = 1000


@contextlib.contextmanager
def bidders() -> Iterator[list[tuple[int, int]]]:
    """The 21 buyers' servers in one process of their own: [(port, latency ms)], -1 hanging."""
    buyers = [(free_port(), latency) for latency in [*LATENCIES_MS, HANGS]]
    process = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "bench" / "sinks.py"), "bidders", *(f"{p},{ms}" for p, ms in buyers)],
        cwd=BASE_DIR,
    )
    try:
        for port, _latency in buyers:
            wait_for_port(port, process)
        yield buyers
    finally:
        process.terminate()
        process.wait(timeout=30)


def _capture_parked(campaign) -> list[tuple[int, str]]:
    kind = follow_up_kind("auction")
    register_follow_up(replace(kind, queue="bench-parked"))
    try:
        for index in range(AUCTIONS):
            lead_capture(
                campaign=campaign,
                submission=parse_submission(
                    {
                        "email": f"auction.bench{index}@example.com",
                        "country": "US",
                        "zip_code": "94110",
                        "action": "quote",
                        "first_name": "Jo",
                        "consent": "yes",
                    }
                ),
                context=CaptureContext(door="api"),
            )
    finally:
        register_follow_up(kind)
    entries = list(
        OutboxEntry.objects.filter(kind="auction", lead__campaign=campaign).order_by("pk").values_list("pk", "kind")
    )
    assert len(entries) == AUCTIONS, f"{len(entries)} auctions for {AUCTIONS} leads"
    return entries


def _floor(buyers: list[tuple[int, int]], ping_body: bytes, post_body: bytes) -> float:
    """Auctions per second of a bare fan-out: AUCTIONS_AT_ONCE auctions at a time, each pinging every
    buyer at once with the 1 s timeout and posting to the highest bid."""
    pools = {
        port: urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=settings.AUCTIONS_AT_ONCE, retries=False)
        for port, _latency in buyers
    }
    timeout = urllib3.Timeout(connect=TIMEOUT_MS / 1000, read=TIMEOUT_MS / 1000)
    pings = ThreadPoolExecutor(max_workers=settings.AUCTIONS_AT_ONCE * len(buyers))
    failures = []

    def ping(port: int) -> float | None:
        try:
            answer = pools[port].urlopen("POST", "/ping", body=ping_body, timeout=timeout)
        except urllib3.exceptions.HTTPError:
            return None
        return float(json.loads(answer.data)["bid"])

    def auction(_index: int) -> None:
        futures = {pings.submit(ping, port): port for port, _latency in buyers}
        done, _ = wait(futures, timeout=TIMEOUT_MS / 1000 + 0.1)
        bids = [(future.result(), futures[future]) for future in done if future.result() is not None]
        _bid, winner = max(bids)
        answer = pools[winner].urlopen("POST", "/post", body=post_body, timeout=10)
        if answer.status != 200:
            failures.append(answer.status)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.AUCTIONS_AT_ONCE) as auctions:
        list(auctions.map(auction, range(AUCTIONS)))
    elapsed = time.perf_counter() - started
    pings.shutdown(wait=False, cancel_futures=True)
    for pool in pools.values():
        pool.close()
    assert not failures, failures[:5]
    return AUCTIONS / elapsed


def _drain(entries, env, campaign) -> float:
    """Auctions per second of the worker running them, from dispatch to the last one ended."""
    ended = Auction.objects.filter(lead__campaign=campaign).exclude(status=Auction.Status.RUNNING)
    return drain_through_worker(entries, env, ended)


def run(timed) -> list[Figure]:
    assert AUCTIONS % settings.OUTBOX_BATCH_SIZE == 0, "BENCH_AUCTIONS must be a multiple of OUTBOX_BATCH_SIZE"
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    source = TrafficSource.objects.create(name="Bench auction", kind="native")
    offer = Offer.objects.create(
        advertiser=Advertiser.objects.create(name="Bench auction offer"),
        name="Bench auction",
        sells_by_auction=True,
        auction_floor_price=Decimal("5.00"),
    )
    campaign = Campaign.objects.create(
        name="Bench auction", slug="bench-auction", traffic_source=source, offer=offer, status="active"
    )
    with bidders() as buyers:
        for port, latency in buyers:
            destination = DeliveryDestination.objects.create(
                advertiser=Advertiser.objects.create(name=f"Bench bidder {port}"),
                name=f"Bidder {latency} ms",
                kind=DeliveryDestination.Kind.PING_POST,
                url=f"http://127.0.0.1:{port}/post",
                ping_url=f"http://127.0.0.1:{port}/ping",
                ping_fields=["country", "zip_prefix", "lead_type", "score_band"],
                bid_json_path="bid",
                bid_id_json_path="bid_id",
                accept_json_path="status",
                accept_json_value="accepted",
                ping_timeout_ms=TIMEOUT_MS,
            )
            destination_rotate_secret(destination=destination)
            DeliveryRoute.objects.create(offer=offer, destination=destination)
        started = time.perf_counter()
        entries = _capture_parked(campaign)
        captured = time.perf_counter() - started
        connection.close()

        ping_body = b'{"country":"US","zip_prefix":"941","lead_type":"hard","score_band":"40-59"}'
        post_body = json.dumps({"email": "auction.bench@example.com", "bid_id": "bid-200"}).encode()
        env = {**os.environ, "DATABASE_URL": database_url(), "DELIVERY_ALLOWED_HOSTS": "127.0.0.1"}
        floor_before = _floor(buyers, ping_body, post_body)
        rate = _drain(entries, env, campaign)
        floor_after = _floor(buyers, ping_body, post_body)
    floor = max(floor_before, floor_after)
    auctions = Auction.objects.filter(lead__campaign=campaign)
    durations = sorted(auctions.values_list("duration_ms", flat=True))
    p95 = statistics.quantiles(durations, n=20)[18]
    ping_p95 = statistics.quantiles(sorted(auctions.values_list("ping_ms", flat=True)), n=20)[18]
    sold = auctions.filter(status=Auction.Status.SOLD).count()
    target = TIMEOUT_MS + 100
    print(
        f"auctions: {rate:,.1f} auctions/s by one worker (solo pool, {settings.AUCTIONS_AT_ONCE} at once) vs "
        f"{floor:,.1f}/s bare thread-pool fan-out ({floor_before:,.1f}/s before, {floor_after:,.1f}/s after) "
        f"(ratio {rate / floor:.2f}); 21 buyers (20 answering in 20-200 ms, one hanging), ping timeout "
        f"{TIMEOUT_MS} ms; duration p50 {statistics.median(durations):,.0f} ms, p95 {p95:,.0f} ms (target "
        f"≤ {target} ms), max {durations[-1]:,} ms, pings alone p95 {ping_p95:,.0f} ms; {sold}/{AUCTIONS} sold; captured in {captured:.1f} s"
    )
    return [
        Figure("Auction duration, p95 (21 buyers, one hanging)", p95, "ms", target=target, lower_is_better=True),
        Figure(
            "Auctions (one worker, solo pool)",
            rate,
            "auctions/s",
            floor,
            f"bare thread-pool fan-out of the same pings and posts, {settings.AUCTIONS_AT_ONCE} auctions at once",
            0.5,
        ),
    ]

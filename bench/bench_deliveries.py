"""Deliveries per second: one Celery worker sending leads to a local buyer server, against a floor of
the same number of bare HTTP POSTs (a new connection each, as deliveries open) from one process."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kombu.pools
from django.conf import settings
from django.db import connection

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Delivery, DeliveryDestination, DeliveryRoute, OutboxEntry
from leads.services import CaptureContext, lead_capture, parse_submission
from leads.services.outbox import dispatch
from leads.services.signing import destination_rotate_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DELIVERIES = 400


class Buyer(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"status":"accepted","id":"B-1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _database_url() -> str:
    config = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{config['USER']}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"
    return f"sqlite:///{config['NAME']}"


def _bare_posts(port: int, bodies: list[bytes]) -> float:
    started = time.perf_counter()
    for body in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/leads", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    return len(bodies) / (time.perf_counter() - started)


def run(timed) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Buyer)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]

    source = TrafficSource.objects.create(name="Bench delivery", kind="native")
    advertiser = Advertiser.objects.create(name="Bench buyer")
    offer = Offer.objects.create(advertiser=advertiser, name="Bench delivery")
    campaign = Campaign.objects.create(
        name="Bench delivery", slug="bench-delivery", traffic_source=source, offer=offer, status="active"
    )
    destination = DeliveryDestination.objects.create(
        advertiser=advertiser,
        name="Bench CRM",
        url=f"http://127.0.0.1:{port}/leads",
        accept_json_path="status",
        accept_json_value="accepted",
        reference_json_path="id",
    )
    destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=offer, destination=destination)

    # Capture with deliveries parked on a queue nobody reads; they are sent all at once below.
    queues = settings.OUTBOX_QUEUES
    settings.OUTBOX_QUEUES = {**queues, "delivery": "bench-parked"}
    for index in range(DELIVERIES):
        lead_capture(
            campaign=campaign,
            submission=parse_submission(
                {"email": f"buyer.bench{index}@example.com", "country": "US", "action": "quote", "first_name": "Jo"}
            ),
            context=CaptureContext(door="api"),
        )
    settings.OUTBOX_QUEUES = queues
    entries = list(OutboxEntry.objects.filter(kind="delivery").values_list("pk", "kind"))
    connection.close()

    sample = json.dumps({"email": "buyer.bench@example.com", "first_name": "Jo", "country": "US"} | {"x": "y" * 600})
    floor = _bare_posts(port, [sample.encode()] * DELIVERIES)

    env = {**os.environ, "DATABASE_URL": _database_url(), "DELIVERY_ALLOWED_HOSTS": "127.0.0.1"}
    broker = _use_redis_if_running()
    if broker:
        env["CELERY_BROKER_URL"] = broker
    half = len(entries) // 2
    solo = _deliver(entries[:half], env, ["--pool", "solo"])
    processes = _deliver(entries[half:], env, ["--pool", "prefork", "--concurrency", "4"])
    server.shutdown()
    print(
        f"deliveries: {solo:,.0f} signed deliveries/s by one worker (solo pool) to a local buyer vs "
        f"{floor:,.0f}/s bare HTTP POSTs from one process (ratio {solo / floor:.2f}); one worker with "
        f"4 processes: {processes:,.0f}/s (ratio {processes / floor:.2f}); "
        f"{DELIVERIES // 2} deliveries each, broker {broker or 'filesystem'}"
    )


def _use_redis_if_running() -> str:
    """Production's broker when the machine has one: the file-system broker polls once a second
    when a thread pool waits, which would measure the broker instead of the deliveries."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return ""
    from leadcrm.celery import app

    url = "redis://127.0.0.1:6379/14"
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads the environment before its settings
    options = {"socket_timeout": 5, "socket_connect_timeout": 5, "visibility_timeout": 3600}
    app.conf.update({"CELERY_BROKER_URL": url, "CELERY_BROKER_TRANSPORT_OPTIONS": options})
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    import redis

    redis.Redis.from_url(url).flushdb()  # a private database: leftovers of an earlier run
    return url


def _deliver(entries, env, pool_args) -> float:
    """Deliveries per second of one worker process sending the given outbox entries."""
    log = Path(os.environ["CELERY_BROKER_DIR"]) / f"worker-{pool_args[1]}.log"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "leadcrm", "worker", *pool_args, "--queues", "deliveries"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # worker start-up is not what we measure
        while "ready." not in log.read_text():
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        before = Delivery.objects.filter(status="accepted").count()
        started = time.perf_counter()
        dispatch(entries)
        deadline = time.monotonic() + 300
        while Delivery.objects.filter(status="accepted").count() < before + len(entries):
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        return len(entries) / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

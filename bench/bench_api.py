"""Lead intake over HTTP: POST /api/v1/leads/ and /leads/batch/ served by gunicorn, against a bare
Django view inserting the same row, driven by a local load generator (threads, keep-alive)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead, Partner
from leads.services.partners import api_key_create

BASE_DIR = Path(__file__).resolve().parent.parent
REQUESTS = 600
CONCURRENCY = 4
BATCH_SIZE = 100
BATCHES = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    return f"sqlite:///{settings['NAME']}"


def lead_body(index: int) -> dict:
    return {
        "campaign": "bench-api",
        "action": "quote",
        "email": f"Api.Person{index}@Example.com",
        "phone": f"+1650555{index % 10000:04d}",
        "first_name": "Jane",
        "last_name": "Doe",
        "country": "US",
    }


def _load(port: int, path: str, headers: dict, bodies: list[bytes]) -> float:
    """Requests per second sending every body once, CONCURRENCY connections at a time."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status not in (200, 201):
                failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    return len(bodies) / elapsed


def run(timed) -> None:
    source = TrafficSource.objects.create(name="Bench API", kind="native")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench API adv"), name="Bench API")
    campaign = Campaign.objects.create(
        name="Bench API", slug="bench-api", traffic_source=source, offer=offer, status="active"
    )
    partner = Partner.objects.create(name="Bench partner", rate_limit_per_minute=1_000_000)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    connection.close()  # let the server processes see committed rows

    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": _database_url()}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "leadcrm.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=BASE_DIR,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        json_headers = {"Content-Type": "application/json", "Host": "localhost"}
        api_headers = {**json_headers, "Authorization": f"Api-Key {raw_key}"}
        floor = _load(port, "/bench/floor/", json_headers, [json.dumps(lead_body(i)).encode() for i in range(REQUESTS)])
        rate = _load(
            port, "/api/v1/leads/", api_headers, [json.dumps(lead_body(10_000 + i)).encode() for i in range(REQUESTS)]
        )
        batches = [
            json.dumps({"leads": [lead_body(20_000 + b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]}).encode()
            for b in range(BATCHES)
        ]
        batch_rate = _load(port, "/api/v1/leads/batch/", api_headers, batches) * BATCH_SIZE
    finally:
        server.terminate()
        server.wait(timeout=30)

    from rest_framework.test import APIClient

    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    with CaptureQueriesContext(connection) as queries:
        assert client.post("/api/v1/leads/", lead_body(99_999), format="json").status_code == 201
    print(
        f"api: {rate:,.0f} leads/s through POST /api/v1/leads/ vs {floor:,.0f}/s bare insert view "
        f"(ratio {rate / floor:.2f}); batch {batch_rate:,.0f} leads/s in batches of {BATCH_SIZE}; "
        f"{len(queries)} queries per API lead; gunicorn 2 workers, {CONCURRENCY} client connections, "
        f"{Lead.objects.count():,} leads stored"
    )

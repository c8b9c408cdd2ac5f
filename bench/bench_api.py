"""Lead intake over HTTP: POST /api/v1/leads/ and /leads/batch/ served by gunicorn, each against a
bare view beside it (bench/urls.py) inserting the same rows, driven by local keep-alive clients."""

import json

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.figures import Figure, queries_without_transaction_control
from bench.people import phone
from bench.servers import CLIENT_CONNECTIONS, GUNICORN_WORKERS, gunicorn, interleaved
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead, Partner
from leads.services.partners import api_key_create

REQUESTS = 200
BATCH_SIZE = 100
BATCHES = 2
ROUNDS = 8


def lead_body(index: int) -> dict:
    return {
        "campaign": "bench-api",
        "action": "quote",
        "email": f"Api.Person{index}@Example.com",
        "phone": phone(index),
        "first_name": "Jane",
        "last_name": "Doe",
        "country": "US",
    }


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Bench API", kind="native")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench API adv"), name="Bench API")
    campaign = Campaign.objects.create(
        name="Bench API", slug="bench-api", traffic_source=source, offer=offer, status="active"
    )
    partner = Partner.objects.create(name="Bench partner", rate_limit_per_minute=1_000_000)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])

    json_headers = {"Content-Type": "application/json", "Host": "localhost"}
    api_headers = {**json_headers, "Authorization": f"Api-Key {raw_key}"}

    def requests(round_number: int) -> dict:
        first = 100_000 * (round_number + 2)  # every lead of every round is new

        def posts(path, headers, count, start):
            return [("POST", path, json.dumps(lead_body(start + i)).encode(), headers) for i in range(count)]

        def batches(path, start):
            return [
                (
                    "POST",
                    path,
                    json.dumps({"leads": [lead_body(start + b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]}).encode(),
                    api_headers,
                )
                for b in range(BATCHES)
            ]

        return {
            "floor": posts("/bench/floor/", json_headers, REQUESTS, first),
            "api": posts("/api/v1/leads/", api_headers, REQUESTS, first + 10_000),
            "batch floor": batches("/bench/floor/batch/", first + 20_000),
            "batch": batches("/api/v1/leads/batch/", first + 40_000),
        }

    with gunicorn() as port:
        rates = interleaved(port, requests, ROUNDS)
    floor, rate = rates["floor"], rates["api"]
    batch_floor, batch_rate = rates["batch floor"] * BATCH_SIZE, rates["batch"] * BATCH_SIZE

    from rest_framework.test import APIClient

    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    # The first post loads this process's configuration (key, campaign); the second is a server's steady state.
    assert client.post("/api/v1/leads/", lead_body(99_998), format="json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert client.post("/api/v1/leads/", lead_body(99_999), format="json").status_code == 201
    print(
        f"api: {rate:,.0f} leads/s through POST /api/v1/leads/ vs {floor:,.0f}/s bare insert view "
        f"(ratio {rate / floor:.2f}); batches of {BATCH_SIZE}: {batch_rate:,.0f} leads/s vs {batch_floor:,.0f}/s "
        f"bare bulk insert view (ratio {batch_rate / batch_floor:.2f}); {len(queries)} queries per API lead "
        f"({queries_without_transaction_control(queries)} without transaction control); gunicorn {GUNICORN_WORKERS} workers, {CLIENT_CONNECTIONS} client connections, "
        f"median of {ROUNDS} interleaved rounds, {Lead.objects.count():,} leads stored"
    )
    return [
        Figure("API intake, `POST /api/v1/leads/` (gunicorn)", rate, "leads/s", floor, "bare insert view", 0.5),
        Figure(
            f"API batch intake, `POST /api/v1/leads/batch/` of {BATCH_SIZE}",
            batch_rate,
            "leads/s",
            batch_floor,
            "bare bulk-insert view",
        ),
    ]

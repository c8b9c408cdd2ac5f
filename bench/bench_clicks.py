"""Click tracking: GET /c/<slug>/ served by gunicorn against a bare insert-and-redirect view beside it
(bench/urls.py: the click's row as given, no user-agent parse, no targeting), same query string and
headers; and the queries a click costs."""

from urllib.parse import urlencode

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.figures import Figure
from bench.servers import CLIENT_CONNECTIONS, GUNICORN_WORKERS, gunicorn, interleaved
from campaigns.models import Advertiser, Campaign, Click, Offer, TrafficSource

CLICKS = 500
ROUNDS = 8
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
)


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Bench source", kind="push", click_id_param="clickid")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench adv"), name="Bench offer")
    Campaign.objects.create(
        name="Bench",
        slug="bench",
        traffic_source=source,
        offer=offer,
        status="active",
        target_countries=["US"],
        landing_url="https://lp.example.com/solar",
    )

    def get(path: str, index: int):
        query = urlencode({"clickid": f"t-{index}", "sub1": "zone", "creative": "cr1"})
        headers = {"Host": "localhost", "User-Agent": USER_AGENTS[index % 3], "CF-IPCountry": "US"}
        return ("GET", f"{path}?{query}", None, headers)

    def requests(round_number: int) -> dict:
        first = 100_000 * (round_number + 1)
        return {
            "floor": [get("/bench/floor/c/bench/", first + i) for i in range(CLICKS)],
            "click": [get("/c/bench/", first + 50_000 + i) for i in range(CLICKS)],
        }

    with gunicorn() as port:
        rates = interleaved(port, requests, ROUNDS)
    rate, floor = rates["click"], rates["floor"]
    assert Click.objects.filter(campaign__slug="bench").count() >= 2 * ROUNDS * CLICKS, "clicks were not stored"

    client = Client()
    client.get("/c/bench/", {"clickid": "warm"}, HTTP_USER_AGENT=USER_AGENTS[0])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            "/c/bench/", {"clickid": "counted", "sub1": "zone"}, HTTP_USER_AGENT=USER_AGENTS[1], HTTP_CF_IPCOUNTRY="US"
        )
    assert response.status_code == 302
    print(
        f"clicks: {rate:,.0f}/s through GET /c/<slug>/ vs {floor:,.0f}/s bare insert-and-redirect view "
        f"(ratio {rate / floor:.2f}); {len(queries)} queries per click (with transaction control); "
        f"gunicorn {GUNICORN_WORKERS} workers, {CLIENT_CONNECTIONS} client connections, median of {ROUNDS} interleaved rounds"
    )
    return [
        Figure("Clicks, `GET /c/<slug>/` (gunicorn)", rate, "clicks/s", floor, "bare insert-and-redirect view", 0.7)
    ]

"""Click tracking: GET /c/<slug>/ end to end, against a bare Click insert of the same data."""

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from campaigns.models import Advertiser, Campaign, Click, LandingPage, Offer, TrafficSource

COUNT = 2000
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
)


def run(timed) -> None:
    source = TrafficSource.objects.create(name="Bench source", kind="push", click_id_param="clickid")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench adv"), name="Bench offer")
    campaign = Campaign.objects.create(
        name="Bench", slug="bench", traffic_source=source, offer=offer, status="active", target_countries=["US"]
    )
    LandingPage.objects.create(campaign=campaign, name="LP", slug="bench-lp", fields=["email"])
    client = Client()

    def bare_insert(index):
        Click.objects.create(
            campaign=campaign,
            traffic_source=source,
            offer=offer,
            click_id=f"bare-{index}",
            sub_ids={"sub1": "zone", "creative": "cr1"},
            ip="203.0.113.7",
            user_agent=USER_AGENTS[index % 3],
            device_type="mobile",
            os="ios",
            browser="Mobile Safari",
            country="US",
        )

    def tracked(index):
        response = client.get(
            "/c/bench/",
            {"clickid": f"t-{index}", "sub1": "zone", "creative": "cr1"},
            HTTP_USER_AGENT=USER_AGENTS[index % 3],
            HTTP_CF_IPCOUNTRY="US",
            REMOTE_ADDR="203.0.113.7",
        )
        assert response.status_code == 302

    def health(index):
        assert client.get("/healthz").status_code == 200

    floor = timed(bare_insert, COUNT)
    request_floor = timed(health, COUNT)
    rate = timed(tracked, COUNT)
    with CaptureQueriesContext(connection) as queries:
        tracked(COUNT + 1)
    print(
        f"clicks: {rate:,.0f}/s through GET /c/<slug>/ vs {floor:,.0f}/s bare Click.objects.create "
        f"(ratio {rate / floor:.2f}) and {request_floor:,.0f}/s GET /healthz through the same client "
        f"(ratio {rate / request_floor:.2f}); {len(queries)} queries per click"
    )

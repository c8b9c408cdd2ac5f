"""Lead capture: landing form posts served by gunicorn against a bare form-insert view beside them
(bench/urls.py), both CSRF-checked; and, in this process, leads per second through lead_capture()
against a bare Lead.objects.create of the same rows, with the queries each capture costs."""

import re
import time
from html import unescape
from urllib.parse import parse_qsl, urlencode

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.figures import Figure, queries_without_transaction_control
from bench.people import phone
from bench.servers import CLIENT_CONNECTIONS, GUNICORN_WORKERS, gunicorn, interleaved
from campaigns.models import Advertiser, Campaign, LandingPage, Offer, TrafficSource
from leads.forms import dump_state
from leads.models import Door, Lead, QualificationRule
from leads.services import CaptureContext, lead_capture, parse_submission

COUNT = 1000
POSTS = 200
ROUNDS = 8
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
CONSENT = "I agree that Bench Solar may call or email me about solar panels."


def submission_data(index: int) -> dict:
    return {
        "action": "quote",
        "email": f"Person.{index}@Example.com",
        "phone": phone(index),
        "first_name": "JANE",
        "last_name": "doe",
        "country": "US",
        "company": "Acme",
        "company_size": 120,
        "budget": "5000",
        "answers": {"timeline": "this month"},
        "consent": True,
        "ip": f"198.51.{(index // 250) % 250}.{index % 250}",
        "user_agent": USER_AGENT,
    }


def _bench_offer(name: str) -> Campaign:
    source = TrafficSource.objects.create(
        name=name, kind="native", postback_url_template="https://t.example/?c={click_id}"
    )
    offer = Offer.objects.create(
        advertiser=Advertiser.objects.create(name=f"{name} adv"), name=name, accepted_countries=["US", "CA"]
    )
    QualificationRule.objects.create(offer=offer, field="company_size", operator=">=", value="50")
    return Campaign.objects.create(
        name=name, slug=name.lower().replace(" ", "-"), traffic_source=source, offer=offer, status="active"
    )


def _csrf(port: int, path: str) -> tuple[str, str]:
    """(cookie, form token) from one GET of the page, as a visitor's browser has them when posting."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Host": "localhost", "User-Agent": USER_AGENT})
    response = conn.getresponse()
    page = response.read().decode()
    assert response.status == 200, (response.status, page[:300])
    cookie = next(c for c in response.headers.get_all("Set-Cookie") if c.startswith("csrftoken=")).split(";")[0]
    conn.close()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', page)
    return cookie, unescape(token.group(1))


def form_posts(port: int):
    """(project, floor) form posts per second, the same fields to /l/<slug>/ and to the bare view, and
    the queries of one post."""
    campaign = _bench_offer("Bench form")
    LandingPage.objects.create(
        campaign=campaign,
        name="Bench form",
        slug="bench-form",
        action="quote",
        fields=["email", "phone", "first_name", "last_name", "country", "company_size"],
        required_fields=["email"],
        consent_text=CONSENT,
        consent_required=True,
    )
    connection.close()  # the page is committed; gunicorn's workers read it
    cookie, token = _csrf(port, "/l/bench-form/")
    # Each visitor's form opened a minute ago (the signed state the page hands out, with its own
    # nonce), so no post is "too fast" and none a replay (each form state is checked and marked used).
    opened = time.time() - 60
    headers = {
        "Host": "localhost",
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
        "User-Agent": USER_AGENT,
        "CF-IPCountry": "US",
    }

    def post(path: str, index: int):
        # Each post from a visitor of its own, as on a real landing page: from one address, all but the
        # first few of an hour would be suspect (IP velocity) and skip a valid lead's follow-ups.
        visitor = {**headers, "X-Forwarded-For": f"203.0.{(index // 250) % 250}.{index % 250 + 1}"}
        fields = {
            "csrfmiddlewaretoken": token,
            "state": dump_state({"started": opened, "nonce": f"bench-{index}", "click_id": "", "answers": {}}),
            "email": f"Form.Person{index}@Example.com",
            "phone": phone(index),
            "first_name": "mary ann",
            "last_name": "McDonald",
            "country": "US",
            "company_size": "120",
            "consent": "on",
        }
        return ("POST", path, urlencode(fields).encode(), visitor)

    def requests(round_number: int) -> dict:
        first = 1_000_000 + 100_000 * (round_number + 1)
        return {
            "floor": [post("/bench/floor/l/bench-form/", first + i) for i in range(POSTS)],
            "form": [post("/l/bench-form/", first + 50_000 + i) for i in range(POSTS)],
        }

    rates = interleaved(port, requests, ROUNDS)
    form_leads = Lead.objects.filter(campaign=campaign, door=Door.LANDING_PAGE)
    assert form_leads.filter(email__startswith="form.person").count() >= POSTS, "the form posts stored no leads"
    assert not form_leads.filter(is_duplicate=True).exists(), "a form post was taken for a duplicate"
    flagged = form_leads.exclude(validity="valid").values_list("validity_reasons", flat=True)[:3]
    assert not flagged, f"form posts were stored as not valid: {list(flagged)}"

    # The queries of one post in this process, its configuration loaded by a first one.
    client = Client(HTTP_USER_AGENT=USER_AGENT, HTTP_CF_IPCOUNTRY="US")
    fields = {
        name: value for name, value in parse_qsl(post("", 7_999_998)[2].decode()) if name != "csrfmiddlewaretoken"
    }
    assert client.post("/l/bench-form/", fields).status_code == 302
    fields.update(email="Form.Counted@Example.com", phone=phone(7_999_999))
    with CaptureQueriesContext(connection) as queries:
        assert client.post("/l/bench-form/", fields).status_code == 302
    return rates["form"], rates["floor"], queries


def run(timed) -> list[Figure]:
    with gunicorn() as port:
        form, form_floor, form_queries = form_posts(port)

    campaign = _bench_offer("Bench leads")
    QualificationRule.objects.create(offer=campaign.offer, field="answers.timeline", operator="==", value="this month")

    def bare_create(index):
        data = submission_data(index)
        Lead.objects.create(
            door=Door.API,
            campaign=campaign,
            offer=campaign.offer,
            traffic_source=campaign.traffic_source,
            email=data["email"].lower(),
            phone=data["phone"],
            first_name="Jane",
            last_name="Doe",
            country="US",
            company="Acme",
            company_size=120,
            budget=5000,
            answers=data["answers"],
            ip=data["ip"],
            user_agent=USER_AGENT,
            action="quote",
            lead_type="hard",
            validity="valid",
            qualification="qualified",
            score=100,
        )

    def captured(index):
        lead_capture(
            campaign=campaign,
            submission=parse_submission(submission_data(COUNT * 10 + index)),
            context=CaptureContext(door=Door.API),
        )

    floor = timed(bare_create, COUNT)
    rate = timed(captured, COUNT)
    with CaptureQueriesContext(connection) as queries:
        captured(COUNT * 100)
    with CaptureQueriesContext(connection) as duplicate_queries:
        captured(COUNT * 100)
    print(
        f"leads: landing form posts {form:,.0f}/s vs {form_floor:,.0f}/s bare form-insert view (ratio "
        f"{form / form_floor:.2f}; {len(form_queries)} queries a post, "
        f"{queries_without_transaction_control(form_queries)} without transaction control; gunicorn {GUNICORN_WORKERS} workers, {CLIENT_CONNECTIONS} client connections, "
        f"median of {ROUNDS} interleaved rounds); in this process {rate:,.0f}/s through lead_capture() vs {floor:,.0f}/s bare "
        f"Lead.objects.create (ratio {rate / floor:.2f}); {len(queries)} queries per new lead, "
        f"{len(duplicate_queries)} per duplicate ({queries_without_transaction_control(queries)} and "
        f"{queries_without_transaction_control(duplicate_queries)} without transaction control; {Lead.objects.count():,} leads stored)"
    )
    return [
        Figure(
            "Landing form posts, `POST /l/<slug>/` (gunicorn)",
            form,
            "posts/s",
            form_floor,
            "bare form-insert view",
            0.5,
        ),
        Figure("`lead_capture()` in one process", rate, "leads/s", floor, "bare `Lead.objects.create`"),
    ]

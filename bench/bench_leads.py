"""Lead capture: leads per second through lead_capture() against a bare Lead.objects.create of the
same rows, and the queries each capture costs. Best run on PostgreSQL (DATABASE_URL)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Door, Lead, QualificationRule
from leads.services import CaptureContext, lead_capture, parse_submission

COUNT = 1000
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


def submission_data(index: int) -> dict:
    return {
        "action": "quote",
        "email": f"Person.{index}@Example.com",
        "phone": f"+1650555{index % 10000:04d}",
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


def run(timed) -> None:
    source = TrafficSource.objects.create(
        name="Bench leads", kind="native", postback_url_template="https://t.example/?c={click_id}"
    )
    offer = Offer.objects.create(
        advertiser=Advertiser.objects.create(name="Bench leads adv"), name="Bench", accepted_countries=["US", "CA"]
    )
    QualificationRule.objects.create(offer=offer, field="company_size", operator=">=", value="50")
    QualificationRule.objects.create(offer=offer, field="answers.timeline", operator="==", value="this month")
    campaign = Campaign.objects.create(
        name="Bench leads", slug="bench-leads", traffic_source=source, offer=offer, status="active"
    )

    def bare_create(index):
        data = submission_data(index)
        Lead.objects.create(
            door=Door.API,
            campaign=campaign,
            offer=offer,
            traffic_source=source,
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
        f"leads: {rate:,.0f}/s through lead_capture() vs {floor:,.0f}/s bare Lead.objects.create "
        f"(ratio {rate / floor:.2f}); {len(queries)} queries per new lead, {len(duplicate_queries)} per duplicate "
        f"(with {Lead.objects.count():,} leads stored)"
    )

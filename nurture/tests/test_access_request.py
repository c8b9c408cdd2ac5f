"""An access request as a manager makes it: one person's data put in every place we keep it comes
back in the JSON export (nurture's part included, through its registration), another person's never."""

import json
import re
from decimal import Decimal
from html import unescape

import pytest
from django.urls import reverse

from campaigns.models import PostbackEvent
from campaigns.tests.factories import CampaignFactory, ClickFactory, LandingPageFactory
from leads.models import DeliveryAttempt, Lead, LeadOutcome, Partner, PartnerNotification, Postback
from leads.services import lead_add_note, lead_log_call
from leads.tests.factories import LeadFactory, delivered
from nurture.models import Audience, AudienceMember, Enrollment, Flow, FlowStep, NurtureMessage, Suppression

pytestmark = pytest.mark.django_db

ANN_EMAIL, ANN_WORK_EMAIL, ANN_PHONE = "ann.lee@example.com", "ann.work@example.com", "+16505551212"
BOB_EMAIL, BOB_PHONE = "bob.ray@example.com", "+16505550000"


def export(client, **fields) -> dict:
    response = client.post(reverse("access-request"), {"email": "", "phone": "", "country": "", **fields})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="access-request-')
    return json.loads(response.content)


def hidden(response, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', response.content.decode())
    assert match
    return unescape(match.group(1))


@pytest.fixture
def ann(client, settings, staff_user_in):
    """Ann's data in every place: a landing-page lead (with its tracked click and consent
    certificate) and an API lead that shares only her phone, with everything staff, buyers,
    suppliers and nurture wrote about them."""
    settings.LEAD_MIN_FORM_SECONDS = 0
    page = LandingPageFactory(
        campaign=CampaignFactory(slug="solar-us"),
        slug="solar-quote",
        fields=["email", "phone", "first_name", "country"],
        consent_text="I agree to be called.",
    )
    ClickFactory(campaign=page.campaign, click_id="ann-click", ip="198.51.100.23", user_agent="Ann's phone")
    shown = client.get(f"{page.get_absolute_url()}?click_id=ann-click")
    posted = client.post(
        page.get_absolute_url(),
        {
            "state": hidden(shown, "state"),
            "email": "Ann.Lee@Example.com",
            "phone": "(650) 555-1212",
            "first_name": "Ann",
            "country": "US",
            "consent": "on",
        },
    )
    assert posted.status_code == 302
    landing = Lead.objects.get(email=ANN_EMAIL)
    other = LeadFactory(campaign=page.campaign, email=ANN_WORK_EMAIL, phone=ANN_PHONE, third_party_consent_id="TF-ANN")

    rep = staff_user_in("Sales")
    lead_add_note(lead=landing, author=rep, body="Ann prefers mornings")
    lead_log_call(lead=landing, rep=rep, outcome="reached", notes="Spoke to Ann at home")
    LeadOutcome.objects.create(lead=other, kind="contacted", note="Ann answered the buyer")
    DeliveryAttempt.objects.create(delivery=delivered(landing), outcome="accepted", response_excerpt="ANN-AT-BUYER")
    postback = Postback.objects.create(lead=landing, event=PostbackEvent.CONVERTED, payout=Decimal("4"), currency="USD")
    DeliveryAttempt.objects.create(postback=postback, outcome="accepted", response_excerpt="ANN-POSTBACK")
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    PartnerNotification.objects.create(partner=supplier, lead=other, event="lead.returned", data={"n": "ANN-RETURN"})

    flow = Flow.objects.create(name="Ann's welcome flow")
    step = FlowStep.objects.create(flow=flow, kind=FlowStep.Kind.EMAIL, subject="Hi", body_text="Hello")
    enrollment = Enrollment.objects.create(flow=flow, lead=landing, step=step)
    NurtureMessage.objects.create(enrollment=enrollment, lead=landing, step=step, to_email=ANN_EMAIL)
    AudienceMember.objects.create(audience=Audience.objects.create(name="Ann's audience"), lead=other)
    Suppression.objects.create(email=ANN_WORK_EMAIL, reason=Suppression.Reason.UNSUBSCRIBED)
    return landing, other


@pytest.fixture
def bob(db):
    """Another person with data in the same places, who must never appear in Ann's export."""
    bob = LeadFactory(email=BOB_EMAIL, phone=BOB_PHONE, first_name="Bobby", third_party_consent_id="TF-BOB")
    lead_add_note(lead=bob, author=None, body="BOB-NOTE")
    LeadOutcome.objects.create(lead=bob, kind="contacted", note="BOB-OUTCOME")
    DeliveryAttempt.objects.create(delivery=delivered(bob), outcome="accepted", response_excerpt="BOB-AT-BUYER")
    flow = Flow.objects.create(name="Bob's flow")
    step = FlowStep.objects.create(flow=flow, kind=FlowStep.Kind.EMAIL, subject="Hi", body_text="Hello")
    enrollment = Enrollment.objects.create(flow=flow, lead=bob, step=step)
    NurtureMessage.objects.create(enrollment=enrollment, lead=bob, step=step, to_email=BOB_EMAIL)
    Suppression.objects.create(email=BOB_EMAIL, reason=Suppression.Reason.BOUNCED)
    return bob


def test_the_export_holds_every_place_the_persons_data_is_and_nobody_elses(client, ann, bob, staff_user_in):
    landing, other = ann
    client.force_login(staff_user_in("Managers"))

    # As a person would write it: mixed case and spaces, a national phone number with its country.
    document = export(client, email="  Ann.Lee@EXAMPLE.com ", phone="(650) 555-1212", country="US")

    assert document["request"]["email"] == ANN_EMAIL and document["request"]["phone"] == ANN_PHONE
    leads = {lead["public_id"]: lead for lead in document["leads"]}
    assert set(leads) == {str(landing.public_id), str(other.public_id)}
    first, second = leads[str(landing.public_id)], leads[str(other.public_id)]

    assert (first["email"], first["phone"], first["first_name"]) == (ANN_EMAIL, ANN_PHONE, "Ann")
    assert "captured" in [event["kind"] for event in first["timeline"]]
    assert [note["body"] for note in first["notes"]] == ["Ann prefers mornings"]
    assert [call["notes"] for call in first["calls"]] == ["Spoke to Ann at home"]
    assert [outcome["note"] for outcome in second["outcomes"]] == ["Ann answered the buyer"]
    (delivery,) = first["deliveries"]
    assert delivery["payload"]["email"] == ANN_EMAIL
    assert delivery["payload"]["consent_certificate_id"] == str(landing.consent_certificate_id)
    assert [attempt["response_excerpt"] for attempt in delivery["attempts"]] == ["ANN-AT-BUYER"]
    assert [a["response_excerpt"] for p in first["postbacks"] for a in p["attempts"]] == ["ANN-POSTBACK"]
    assert [n["data"] for n in second["partner_notifications"]] == [{"n": "ANN-RETURN"}]
    assert first["tracked_click"]["click_id"] == "ann-click"
    assert first["tracked_click"]["ip"] == "198.51.100.23"
    certificate = first["consent_certificate"]
    assert certificate["public_id"] == str(landing.consent_certificate_id)
    assert (certificate["consent_text"], certificate["ip"]) == ("I agree to be called.", "127.0.0.1")
    assert "visitor_key" not in certificate
    assert second["third_party_consent_id"] == "TF-ANN"

    nurture = document["nurture"]
    assert [row["flow_name"] for row in nurture["enrollments"]] == ["Ann's welcome flow"]
    assert [row["to_email"] for row in nurture["messages"]] == [ANN_EMAIL]
    assert [row["audience_name"] for row in nurture["audience_memberships"]] == ["Ann's audience"]
    # Suppressed under the work address of the lead her phone found.
    assert [row["email"] for row in nurture["suppressions"]] == [ANN_WORK_EMAIL]

    text = json.dumps(document)
    for marker in (BOB_EMAIL, BOB_PHONE, "Bobby", "BOB-NOTE", "BOB-OUTCOME", "BOB-AT-BUYER", "TF-BOB", "Bob's flow"):
        assert marker not in text, marker


def test_an_email_alone_finds_only_the_leads_with_that_email(client, ann, bob, superuser):
    landing, _ = ann
    client.force_login(superuser)

    document = export(client, email=ANN_EMAIL)

    assert [lead["public_id"] for lead in document["leads"]] == [str(landing.public_id)]
    assert [row["to_email"] for row in document["nurture"]["messages"]] == [ANN_EMAIL]
    assert document["nurture"]["suppressions"] == []


def test_a_suppressed_address_with_no_lead_is_still_reported(client, superuser):
    Suppression.objects.create(email="gone@example.com", reason=Suppression.Reason.COMPLAINED)
    client.force_login(superuser)

    document = export(client, email="GONE@example.com")

    assert document["leads"] == []
    assert [row["reason"] for row in document["nurture"]["suppressions"]] == ["complained"]

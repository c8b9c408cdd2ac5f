"""Consent certificates as a visitor makes them, an auditor checks them, a buyer receives them and
staff read them; and the supplier's TrustedForm or Jornaya certificate through the API."""

import datetime
import hashlib
import hmac
import json
import re
from html import unescape

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import LandingPage
from campaigns.tests.factories import CampaignFactory, LandingPageFactory, QuizQuestionFactory
from leads.forms import dump_state
from leads.models import (
    ConsentCertificate,
    DeliveryDestination,
    DeliveryRoute,
    Door,
    Lead,
    Partner,
    validate_field_mapping,
)
from leads.services.delivery_payload import lead_payload, mapped_payload
from leads.services.erasure import lead_erase
from leads.services.partners import api_key_create
from leads.services.signing import destination_rotate_secret
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
CONSENT = "I agree that Sunny Roofs may call or email me about solar panels.\nÉté offers included."
TRUSTEDFORM = "https://cert.trustedform.com/2f1f5c3e0e0c4d8e9a1b2c3d4e5f60718293a4b5"
JORNAYA = "A1B2C3D4-E5F6-7890-ABCD-EF1234567890"


@pytest.fixture(autouse=True)
def _no_minimum_form_time(settings):
    settings.LEAD_MIN_FORM_SECONDS = 0


@pytest.fixture
def page():
    return LandingPageFactory(
        campaign=CampaignFactory(slug="solar-us"),
        slug="solar-quote",
        name="Solar quote, spring",
        action="quote",
        fields=["email", "phone", "first_name", "country", "message"],
        required_fields=["email"],
        consent_text=CONSENT,
        consent_version="2024-05",
        consent_required=True,
    )


@pytest.fixture
def quiz():
    quiz = LandingPageFactory(
        campaign=CampaignFactory(slug="solar-quiz-us"),
        slug="solar-quiz",
        kind=LandingPage.Kind.QUIZ,
        action="quiz",
        fields=["email"],
        required_fields=["email"],
        consent_text="Send me my results.",
        consent_version="q-1",
    )
    QuizQuestionFactory(landing_page=quiz, position=1, key="timeline", text="When?", options=["Now", "Later"])
    QuizQuestionFactory(landing_page=quiz, position=2, key="bill", text="Your monthly bill?", kind="number")
    return quiz


def hidden(response, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', response.content.decode())
    assert match, f"no hidden {name!r} field"
    return unescape(match.group(1))


def submit(client, page, **fields) -> Lead:
    shown = client.get(page.get_absolute_url(), HTTP_USER_AGENT=BROWSER)
    assert shown.status_code == 200
    data = {"state": hidden(shown, "state"), **fields}
    response = client.post(page.get_absolute_url(), data, HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Lead.objects.latest("id")


def certificate_of(lead: Lead) -> ConsentCertificate:
    lead.refresh_from_db()
    return ConsentCertificate.objects.get(public_id=lead.consent_certificate_id)


def expected_sha256(certificate: ConsentCertificate, lead: Lead) -> str:
    """The documented canonical form, written out here independently of the service's code."""

    def instant(value):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if value else None

    document = {
        "consent": {"given": certificate.consent_given, "text_sha256": certificate.consent_text_sha256},
        "fields_submitted": sorted(certificate.fields_submitted),
        "form_shown_at": instant(certificate.form_shown_at),
        "format": "leadcrm-consent-certificate/1",
        "id": str(certificate.public_id),
        "lead": str(lead.public_id),
        "page": {
            "consent_version": certificate.consent_version,
            "kind": certificate.page_kind,
            "name": certificate.page_name,
            "slug": certificate.page_slug,
        },
        "submitted_at": instant(certificate.submitted_at),
        "visitor": {"ip_hmac": certificate.ip_digest, "user_agent_hmac": certificate.user_agent_digest},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def public_page(client, certificate_id) -> str:
    response = client.get(f"/consent/{certificate_id}/")
    assert response.status_code == 200
    return response.content.decode()


# --- written with every landing-page and quiz lead ----------------------------------------------


def test_a_landing_page_lead_gets_a_certificate_of_what_the_form_showed_and_what_was_sent(client, page):
    before = timezone.now()
    lead = submit(client, page, email="Ann@Example.com", phone="", first_name="Ann", country="US", consent="on")

    certificate = certificate_of(lead)
    assert certificate.consent_text == CONSENT
    assert certificate.consent_text_sha256 == hashlib.sha256(CONSENT.encode()).hexdigest()
    assert (certificate.page_slug, certificate.page_name, certificate.page_kind) == (
        "solar-quote",
        "Solar quote, spring",
        "form",
    )
    assert certificate.consent_version == "2024-05"
    assert certificate.consent_given is True
    assert before <= certificate.form_shown_at <= certificate.submitted_at <= timezone.now()
    assert (certificate.ip, certificate.user_agent) == ("127.0.0.1", BROWSER)
    # Names only, of the fields sent with a value: the empty phone and the honeypot are not among them.
    assert certificate.fields_submitted == ["consent", "country", "email", "first_name"]
    key = bytes.fromhex(certificate.visitor_key)
    assert certificate.ip_digest == hmac.new(key, b"127.0.0.1", hashlib.sha256).hexdigest()
    assert certificate.user_agent_digest == hmac.new(key, BROWSER.encode(), hashlib.sha256).hexdigest()
    assert certificate.sha256 == expected_sha256(certificate, lead)
    assert "Verified" in public_page(client, certificate.public_id)


def test_a_lead_without_consent_still_gets_a_certificate_that_says_so(client, page):
    page.consent_required = False
    page.save()
    lead = submit(client, page, email="bo@example.com", country="US")

    certificate = certificate_of(lead)
    assert certificate.consent_given is False
    assert certificate.consent_text == CONSENT  # shown, not ticked
    assert "No: the box was not ticked" in public_page(client, certificate.public_id)


def test_a_quiz_lead_gets_a_certificate_naming_the_questions_answered(client, quiz):
    response = client.get(quiz.get_absolute_url(), HTTP_USER_AGENT=BROWSER)
    for value in ("Now", "120"):
        response = client.post(
            quiz.get_absolute_url(),
            {"state": hidden(response, "state"), "step": hidden(response, "step"), "answer": value},
            HTTP_USER_AGENT=BROWSER,
        )
        assert response.status_code == 200
    done = client.post(
        quiz.get_absolute_url(),
        {"state": hidden(response, "state"), "step": hidden(response, "step"), "email": "pat@example.com"},
        HTTP_USER_AGENT=BROWSER,
    )
    assert done.status_code == 302

    lead = Lead.objects.get()
    assert lead.door == Door.QUIZ
    certificate = certificate_of(lead)
    assert certificate.page_kind == "quiz"
    assert (certificate.consent_text, certificate.consent_version) == ("Send me my results.", "q-1")
    assert certificate.fields_submitted == ["answers.bill", "answers.timeline", "email"]
    assert certificate.sha256 == expected_sha256(certificate, lead)


def test_the_certificate_quotes_the_text_shown_even_if_the_page_changed_before_sending(client, page):
    shown = client.get(page.get_absolute_url(), HTTP_USER_AGENT=BROWSER)
    page.consent_text = "A new text the visitor never saw."
    page.consent_version = "2025-01"
    page.save()
    cache.clear()

    client.post(
        page.get_absolute_url(),
        {"state": hidden(shown, "state"), "email": "cy@example.com", "country": "US", "consent": "on"},
        HTTP_USER_AGENT=BROWSER,
    )

    lead = Lead.objects.get()
    certificate = certificate_of(lead)
    assert (certificate.consent_text, certificate.consent_version) == (CONSENT, "2024-05")
    assert (lead.consent_text, lead.consent_version) == (CONSENT, "2024-05")


def test_a_post_without_the_signed_form_state_gets_a_certificate_with_no_shown_time(client, page):
    client.post(
        page.get_absolute_url(),
        {"state": "forged", "email": "dee@example.com", "country": "US", "consent": "on"},
        HTTP_USER_AGENT=BROWSER,
    )

    certificate = certificate_of(Lead.objects.get())
    assert certificate.form_shown_at is None
    assert certificate.consent_text == CONSENT  # the page's text stands in
    html = public_page(client, certificate.public_id)
    assert "unknown (the form's signed state was missing)" in html


def test_a_form_opened_before_certificates_existed_is_dated_by_its_start_time(client, page):
    started = timezone.now() - datetime.timedelta(minutes=3)
    state = dump_state({"started": started.timestamp(), "click_id": "", "answers": {}})  # no "shown" in it

    client.post(
        page.get_absolute_url(),
        {"state": state, "email": "old@example.com", "country": "US", "consent": "on"},
        HTTP_USER_AGENT=BROWSER,
    )

    certificate = certificate_of(Lead.objects.get())
    assert abs(certificate.form_shown_at - started) < datetime.timedelta(milliseconds=1)
    assert (certificate.consent_text, certificate.consent_version) == (CONSENT, "2024-05")


def test_a_zero_typed_in_a_field_counts_as_sent(client, page):
    page.fields = [*page.fields, "company_size"]
    page.save()
    cache.clear()

    lead = submit(client, page, email="zed@example.com", country="US", company_size="0", consent="on")

    assert "company_size" in certificate_of(lead).fields_submitted


def test_api_leads_get_no_certificate_of_ours(client):
    campaign = CampaignFactory()
    partner = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    partner.campaigns.add(campaign)
    _, key = api_key_create(partner=partner, scopes=["leads:write", "leads:read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    response = api.post("/api/v1/leads/", {"campaign": campaign.slug, "email": "x@example.com"}, format="json")

    assert response.status_code == 201, response.content
    assert Lead.objects.get().consent_certificate_id is None
    assert ConsentCertificate.objects.count() == 0


# --- the public page ----------------------------------------------------------------------------


def test_the_public_page_shows_the_evidence_without_personal_data_or_scripts(client, page):
    lead = submit(
        client,
        page,
        email="ann.lee@example.com",
        phone="+16505551212",
        first_name="Annabel",
        country="US",
        message="Call me after five",
        consent="on",
    )
    certificate = certificate_of(lead)
    response = client.get(f"/consent/{certificate.public_id}/", REMOTE_ADDR="198.51.100.7")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Verified" in html and "Not verified" not in html
    assert "Yes: the box was ticked" in html
    assert str(certificate.public_id) in html
    assert "Solar quote, spring" in html and "2024-05" in html
    assert "Sunny Roofs may call or email me" in html
    assert certificate.sha256 in html and certificate.consent_text_sha256 in html
    assert "consent, country, email, first_name, message, phone" in html  # the names, not the values
    # The phone in any of its written forms (a bare "650" would also match the page's ids and digests).
    phone_forms = ("6505551212", "650 555", "650-555", "(650)", "555 1212", "555-1212")
    for personal in ("ann.lee", *phone_forms, "Annabel", "Call me after five", "127.0.0.1", "Chrome"):
        assert personal not in html, personal
    assert str(lead.public_id) not in html
    assert certificate.visitor_key not in html and certificate.ip_digest not in html
    # A plain page: it works under a Content-Security-Policy without 'unsafe-inline' scripts.
    assert "<script" not in html.lower()
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("consent_text", "I agree to anything.", "The consent text does not match its SHA-256."),
        ("consent_given", False, "Its content does not match its SHA-256."),
        ("page_name", "Another page", "Its content does not match its SHA-256."),
        ("fields_submitted", ["email"], "Its content does not match its SHA-256."),
        ("submitted_at", datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), "Its content does not match its SHA-256."),
        ("ip", "203.0.113.50", "The IP address does not match its digest."),
        ("user_agent", "curl/8.0", "The user agent does not match its digest."),
    ],
)
def test_a_certificate_edited_after_the_fact_fails_verification_on_its_page(client, page, field, value, problem):
    certificate = certificate_of(submit(client, page, email="eve@example.com", country="US", consent="on"))
    assert "Verified" in public_page(client, certificate.public_id)

    ConsentCertificate.objects.filter(pk=certificate.pk).update(**{field: value})

    html = public_page(client, certificate.public_id)
    assert "Not verified" in html
    assert unescape(html).count(problem) == 1


def test_a_certificate_moved_to_another_lead_fails_verification(client, page):
    first = submit(client, page, email="one@example.com", country="US", consent="on")
    certificate = certificate_of(first)
    other = submit(client, page, email="two@example.com", country="US", consent="on")
    Lead.objects.filter(pk=first.pk).update(consent_certificate=None)
    Lead.objects.filter(pk=other.pk).update(consent_certificate=None)
    Lead.objects.filter(pk=other.pk).update(consent_certificate=certificate.public_id)

    assert "Its content does not match its SHA-256." in unescape(public_page(client, certificate.public_id))


def test_an_unknown_certificate_is_not_found(client):
    assert client.get("/consent/5b0c8a4e-2f1d-4c39-9a57-0c0f8d0e1a11/").status_code == 404
    assert client.get("/consent/1/").status_code == 404


# --- erasure ------------------------------------------------------------------------------------


def test_erasure_blanks_the_visitor_on_the_certificate_which_still_verifies(client, page):
    lead = submit(client, page, email="fay@example.com", country="US", consent="on")
    Lead.objects.filter(pk=lead.pk).update(third_party_consent_id=TRUSTEDFORM)
    before = certificate_of(lead)

    assert lead_erase(lead=lead) is True

    after = certificate_of(lead)
    assert (after.ip, after.user_agent, after.visitor_key) == (None, "", "")
    assert after.erased_at is not None
    # What the certificate proves is unchanged: its hash, its text and the digests written at capture.
    assert (after.sha256, after.consent_text, after.ip_digest) == (before.sha256, CONSENT, before.ip_digest)
    html = public_page(client, after.public_id)
    assert "Verified" in html and "Not verified" not in html
    assert "erased on request" in html
    # The supplier's certificate is an id at its provider, naming no one here: kept as proof of consent.
    lead.refresh_from_db()
    assert (lead.email, lead.third_party_consent_id) == ("", TRUSTEDFORM)


# --- the supplier's certificate through the API, and delivery -----------------------------------


@pytest.fixture
def supplier_api():
    campaign = CampaignFactory(slug="api-campaign")
    partner = Partner.objects.create(name="Affiliate", role=Partner.Role.BOTH, advertiser=campaign.offer.advertiser)
    partner.campaigns.add(campaign)
    _, key = api_key_create(partner=partner, scopes=["leads:write", "leads:read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api, campaign


@pytest.mark.parametrize("third_party", [TRUSTEDFORM, JORNAYA])
def test_an_api_lead_keeps_its_third_party_certificate_shows_it_and_delivers_it(supplier_api, third_party):
    api, campaign = supplier_api
    cache.clear()

    response = api.post(
        "/api/v1/leads/",
        {"campaign": campaign.slug, "email": "gil@example.com", "third_party_consent_id": third_party},
        format="json",
    )

    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert lead.third_party_consent_id == third_party
    shown = api.get(f"/api/v1/leads/{lead.public_id}/").json()
    assert shown["third_party_consent_id"] == third_party
    assert shown["consent_certificate"] is None and shown["consent_certificate_url"] is None
    assert lead_payload(lead)["third_party_consent_id"] == third_party


def test_the_buyer_receives_the_third_party_certificate_in_the_delivery_it_is_sent(
    supplier_api, settings, httpserver, django_capture_on_commit_callbacks
):
    api, campaign = supplier_api
    cache.clear()
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Buyer CRM", url=httpserver.url_for("/leads")
    )
    destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    httpserver.expect_oneshot_request("/leads", method="POST").respond_with_json({"ok": True})

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/leads/",
            {"campaign": campaign.slug, "email": "kim@example.com", "country": "US", "third_party_consent_id": JORNAYA},
            format="json",
        )

    assert response.status_code == 201, response.content
    httpserver.check_assertions()
    body = json.loads(httpserver.log[0][0].get_data())
    assert body["third_party_consent_id"] == JORNAYA
    assert body["consent_certificate_id"] is None and body["consent_certificate_url"] is None


def test_a_third_party_certificate_too_long_is_refused_and_nothing_is_stored(supplier_api):
    api, campaign = supplier_api
    cache.clear()

    response = api.post(
        "/api/v1/leads/",
        {"campaign": campaign.slug, "email": "hal@example.com", "third_party_consent_id": "x" * 301},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"third_party_consent_id"}
    assert Lead.objects.count() == 0


def test_the_api_schema_describes_the_third_party_certificate_field():
    schema = APIClient().get("/api/schema/?format=json").json()
    described = schema["components"]["schemas"]["LeadInputRequest"]["properties"]["third_party_consent_id"]
    assert [kind["maxLength"] for kind in described["anyOf"] if kind["type"] == "string"] == [300]


def test_delivery_payloads_carry_our_certificate_and_the_suppliers(client, page, settings):
    settings.SITE_URL = "https://leads.example.com"
    lead = submit(client, page, email="ida@example.com", country="US", consent="on")
    Lead.objects.filter(pk=lead.pk).update(third_party_consent_id=TRUSTEDFORM)
    lead = Lead.objects.select_related("campaign", "offer", "traffic_source").get(pk=lead.pk)

    payload = lead_payload(lead)

    assert payload["consent_certificate_id"] == str(lead.consent_certificate_id)
    assert payload["consent_certificate_url"] == f"https://leads.example.com/consent/{lead.consent_certificate_id}/"
    assert payload["third_party_consent_id"] == TRUSTEDFORM
    mapping = {"cert": "consent_certificate_url", "xxTrustedFormCertUrl": "third_party_consent_id"}
    validate_field_mapping(mapping)
    assert mapped_payload(lead, mapping) == {
        "cert": payload["consent_certificate_url"],
        "xxTrustedFormCertUrl": TRUSTEDFORM,
    }


# --- the lead page ------------------------------------------------------------------------------


def test_the_lead_page_shows_the_certificate_and_whether_it_verifies(client, page, superuser):
    lead = submit(client, page, email="jo@example.com", country="US", consent="on")
    Lead.objects.filter(pk=lead.pk).update(third_party_consent_id=TRUSTEDFORM)
    certificate = certificate_of(lead)
    client.force_login(superuser)
    url = reverse("admin:leads_lead_change", args=[lead.pk])

    html = client.get(url).content.decode()
    assert str(certificate.public_id) in html
    assert "Verified</strong>: it still matches its SHA-256." in html
    assert f'href="{TRUSTEDFORM}"' in html

    ConsentCertificate.objects.filter(pk=certificate.pk).update(page_name="Edited")
    html = client.get(url).content.decode()
    assert "Not verified</strong>: Its content does not match its SHA-256." in html


def test_the_lead_page_never_links_a_third_party_value_that_is_not_https(client, superuser):
    lead = LeadFactory(third_party_consent_id="javascript:alert(1)")
    client.force_login(superuser)

    html = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    assert 'href="javascript:' not in html
    assert "javascript:alert(1)" in html
    assert "None: only landing-page and quiz leads get one." in html

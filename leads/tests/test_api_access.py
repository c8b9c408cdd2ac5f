"""The partner API from the outside: who may call what, the lead contract, bad input, idempotency,
batches, sandbox keys, the rate limit, lists, the request log and the key command.

Every call goes through DRF's APIClient with real keys from api_key_create(). The client re-raises
any exception a view lets escape, so a 500 anywhere fails the test that caused it.
"""

import datetime
import hashlib
import json
import logging
import re
import threading
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.tests.factories import AdvertiserFactory, CampaignFactory, LandingPageFactory, UserFactory
from leads.api.serializers import LeadResultSerializer, lead_result
from leads.models import ApiScope, IdempotencyRecord, Lead, LeadOutcome, OutboxEntry, Partner
from leads.services.partners import api_key_create, api_key_revoke
from leads.tests.factories import LeadFactory, QualificationRuleFactory, delivered

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads/"
BATCH = "/api/v1/leads/batch/"
CAMPAIGNS = "/api/v1/campaigns/"
REPORTS = "/api/v1/reports/"
ALL_SCOPES = list(ApiScope.values)
CONTRACT_KEYS = {
    "id",
    "status",
    "lead_type",
    "validity",
    "validity_reasons",
    "qualification",
    "qualification_reasons",
    "score",
    "duplicate",
    "duplicate_of",
    "test",
}


@pytest.fixture(autouse=True)
def _empty_cache():
    # The rate limit counts in the cache; one test's requests must not throttle the next one's.
    cache.clear()
    yield
    cache.clear()


def make_partner(name: str, *, campaigns=(), role=Partner.Role.SUPPLIER, **fields) -> Partner:
    partner = Partner.objects.create(name=name, role=role, **fields)
    partner.campaigns.add(*campaigns)
    return partner


def make_key(partner: Partner, scopes=ALL_SCOPES, **options) -> str:
    _, raw_key = api_key_create(partner=partner, scopes=list(scopes), **options)
    return raw_key


def client_with(raw_key: str | None = None) -> APIClient:
    client = APIClient()
    if raw_key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def assert_error(response, status: int, code: str, fields=None) -> dict:
    """The one error shape; `fields` (a set of names) must be exactly the fields reported."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if fields is not None:
        assert set(body["error"]["fields"]) == set(fields)
    return body["error"]


@pytest.fixture
def partner_a(campaign):
    """Supplier to the campaign and buyer of its advertiser's leads: every endpoint applies to it."""
    return make_partner("Partner A", campaigns=[campaign], role=Partner.Role.BOTH, advertiser=campaign.offer.advertiser)


@pytest.fixture
def partner_b(campaign):
    """Another supplier and buyer on the same campaign, buying for another advertiser."""
    return make_partner("Partner B", campaigns=[campaign], role=Partner.Role.BOTH, advertiser=AdvertiserFactory())


@pytest.fixture
def supplier(campaign):
    return make_partner("Affiliate", campaigns=[campaign])


@pytest.fixture
def supplier_client(supplier):
    return client_with(make_key(supplier))


def lead_body(campaign, **fields) -> dict:
    return {"campaign": campaign.slug, "email": "ann.smith@example.com", "first_name": "Ann", **fields}


# --- 1. who may call what -------------------------------------------------------------------
# name: (method, path given a lead, the scope it needs, status when allowed)
ENDPOINTS = {
    "submit": ("post", lambda lead: LEADS, ApiScope.LEADS_WRITE, 201),
    "batch": ("post", lambda lead: BATCH, ApiScope.LEADS_WRITE, 200),
    "list": ("get", lambda lead: LEADS, ApiScope.LEADS_READ, 200),
    "detail": ("get", lambda lead: f"{LEADS}{lead.public_id}/", ApiScope.LEADS_READ, 200),
    "outcome": ("post", lambda lead: f"{LEADS}{lead.public_id}/outcome/", ApiScope.OUTCOMES_WRITE, 201),
    "campaigns": ("get", lambda lead: CAMPAIGNS, ApiScope.CAMPAIGNS_READ, 200),
    "reports": ("get", lambda lead: REPORTS, ApiScope.REPORTS_READ, 200),
}


def call_endpoint(client: APIClient, name: str, lead: Lead, **extra):
    method, path, _, _ = ENDPOINTS[name]
    today = timezone.localdate()
    data = {
        "submit": lead_body(lead.campaign, email="new.person@example.com"),
        "batch": {"leads": [lead_body(lead.campaign, email="new.person@example.com")]},
        "outcome": {"outcome": "contacted"},
        "reports": {"date_from": str(today - datetime.timedelta(days=7)), "date_to": str(today)},
    }.get(name)
    if method == "post":
        return client.post(path(lead), data, format="json", **extra)
    return client.get(path(lead), data, **extra)


def _no_key(partner, scope):
    return None


def _unknown_key(partner, scope):
    return "lcrm_0badc0de_" + "x" * 43


def _not_a_key(partner, scope):
    return "let-me-in"


def _right_prefix_wrong_secret(partner, scope):
    real = make_key(partner)
    return real[: real.rindex("_") + 1] + "y" * 43


def _revoked_key(partner, scope):
    key, raw_key = api_key_create(partner=partner, scopes=ALL_SCOPES)
    api_key_revoke(key=key)
    return raw_key


def _expired_key(partner, scope):
    return make_key(partner, expires_at=timezone.now() - datetime.timedelta(minutes=1))


def _inactive_partner_key(partner, scope):
    raw_key = make_key(partner)
    Partner.objects.filter(pk=partner.pk).update(is_active=False)
    return raw_key


def _key_without_the_scope(partner, scope):
    return make_key(partner, scopes=[other for other in ALL_SCOPES if other != scope])


def _caller_outside_ip_allowlist(partner, scope):
    Partner.objects.filter(pk=partner.pk).update(ip_allowlist=["203.0.113.0/24", "2001:db8::/32"])
    return make_key(partner)  # the test client calls from 127.0.0.1


REFUSALS = {
    "anonymous": (_no_key, 401, "not_authenticated"),
    "unknown key": (_unknown_key, 401, "authentication_failed"),
    "not a key": (_not_a_key, 401, "authentication_failed"),
    "wrong secret": (_right_prefix_wrong_secret, 401, "authentication_failed"),
    "revoked key": (_revoked_key, 401, "authentication_failed"),
    "expired key": (_expired_key, 401, "authentication_failed"),
    "inactive partner": (_inactive_partner_key, 401, "authentication_failed"),
    "missing scope": (_key_without_the_scope, 403, "permission_denied"),
    "ip not allowed": (_caller_outside_ip_allowlist, 403, "permission_denied"),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("refusal", REFUSALS)
def test_refused_callers_get_401_or_403_and_change_nothing(partner_a, campaign, refusal, endpoint):
    lead = LeadFactory(partner=partner_a, campaign=campaign)
    make_raw_key, status, code = REFUSALS[refusal]
    client = client_with(make_raw_key(partner_a, ENDPOINTS[endpoint][2]))

    response = call_endpoint(client, endpoint, lead)

    assert_error(response, status, code)
    if status == 401:
        assert response["WWW-Authenticate"] == "Api-Key"
    assert list(Lead.objects.all()) == [lead]
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_key_with_the_scope_from_an_allowed_ip_is_served(partner_a, campaign, endpoint):
    lead = LeadFactory(partner=partner_a, campaign=campaign)
    delivered(lead)  # partner A also bought it, so it may report its outcome
    Partner.objects.filter(pk=partner_a.pk).update(ip_allowlist=["203.0.113.0/24"])
    client = client_with(make_key(partner_a, scopes=[ENDPOINTS[endpoint][2]]))

    response = call_endpoint(client, endpoint, lead, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == ENDPOINTS[endpoint][3], response.content
    assert Lead.objects.count() == (2 if endpoint in ("submit", "batch") else 1)
    assert LeadOutcome.objects.count() == (1 if endpoint == "outcome" else 0)


@pytest.mark.parametrize("role", Partner.Role.values)
@pytest.mark.parametrize("endpoint", ["detail", "outcome"])
def test_another_partners_lead_is_not_found_never_forbidden(partner_a, partner_b, campaign, endpoint, role):
    lead = LeadFactory(partner=partner_a, campaign=campaign)
    Partner.objects.filter(pk=partner_b.pk).update(role=role)
    client = client_with(make_key(partner_b))

    response = call_endpoint(client, endpoint, lead)

    assert_error(response, 404, "not_found")
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


def test_another_partners_leads_are_not_listed(partner_a, partner_b, campaign):
    LeadFactory(partner=partner_a, campaign=campaign)
    own = LeadFactory(partner=partner_b, campaign=campaign)

    response = client_with(make_key(partner_b)).get(LEADS)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(own.public_id)]


def test_a_lead_is_looked_up_by_its_public_id_never_its_database_id(supplier, supplier_client, campaign):
    lead = LeadFactory(partner=supplier, campaign=campaign)

    response = supplier_client.get(f"{LEADS}{lead.pk}/")

    assert_error(response, 404, "not_found")
    assert supplier_client.get(f"{LEADS}{lead.public_id}/").json()["id"] == str(lead.public_id)


@pytest.mark.parametrize("slug", ["not-my-campaign", "no-such-campaign"])
def test_a_supplier_may_post_only_to_its_own_campaigns(supplier_client, slug):
    CampaignFactory(slug="not-my-campaign")

    response = supplier_client.post(LEADS, {"campaign": slug, "email": "jo@example.com"}, format="json")

    error = assert_error(response, 400, "invalid", fields={"campaign"})
    assert error["fields"]["campaign"] == ["Unknown campaign, or one this key may not post to."]
    assert not Lead.objects.exists()


@pytest.fixture
def staff_leads(staff_user_in, campaign):
    """A rep's own lead, another rep's, one in the unassigned queue and an invalid unassigned one."""
    rep = staff_user_in("Sales", username="rep")
    other_rep = staff_user_in("Sales", username="other-rep")
    return rep, {
        "own": LeadFactory(campaign=campaign, assigned_to=rep),
        "other_rep": LeadFactory(campaign=campaign, assigned_to=other_rep),
        "queue": LeadFactory(campaign=campaign),
        "invalid": LeadFactory(campaign=campaign, validity="invalid"),
    }


def test_a_superuser_session_reads_every_lead(superuser, staff_leads):
    _, leads = staff_leads
    client = APIClient()
    client.force_login(superuser)

    response = client.get(LEADS)

    assert response.status_code == 200
    assert {item["id"] for item in response.json()["results"]} == {str(lead.public_id) for lead in leads.values()}


def test_a_sales_rep_session_reads_only_own_and_unassigned_queue_leads(staff_leads):
    rep, leads = staff_leads
    client = APIClient()
    client.force_login(rep)

    listed = client.get(LEADS)
    hidden = client.get(f"{LEADS}{leads['other_rep'].public_id}/")

    assert listed.status_code == 200
    assert {item["id"] for item in listed.json()["results"]} == {
        str(leads["own"].public_id),
        str(leads["queue"].public_id),
    }
    assert_error(hidden, 404, "not_found")


@pytest.mark.parametrize("is_staff", [False, True], ids=["not staff", "staff without permissions"])
def test_a_session_without_the_permission_is_forbidden(campaign, is_staff):
    client = APIClient()
    client.force_login(UserFactory(is_staff=is_staff))

    listed = client.get(LEADS)
    posted = client.post(LEADS, lead_body(campaign), format="json")

    assert_error(listed, 403, "permission_denied")
    assert_error(posted, 403, "permission_denied")
    assert not Lead.objects.exists()


def test_a_superuser_session_may_post_to_any_campaign(superuser):
    other = CampaignFactory()
    client = APIClient()
    client.force_login(superuser)

    response = client.post(LEADS, lead_body(other), format="json")

    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (lead.campaign, lead.partner) == (other, None)


# --- 2. the answer to a new lead ------------------------------------------------------------
def test_a_created_lead_is_answered_with_exactly_the_contract(supplier, supplier_client, campaign):
    response = supplier_client.post(
        LEADS, lead_body(campaign, phone="+1 650 555 1212", country="US", consent=True), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    lead = Lead.objects.get()
    assert body["id"] == str(lead.public_id) != str(lead.pk)
    assert (lead.partner, lead.campaign, lead.door) == (supplier, campaign, "api")
    assert body == {
        "id": str(lead.public_id),
        "status": "new",
        "lead_type": lead.lead_type,
        "validity": "valid",
        "validity_reasons": [],
        "qualification": lead.qualification,
        "qualification_reasons": lead.qualification_reasons,
        "score": lead.score,
        "duplicate": False,
        "duplicate_of": None,
        "test": False,
    }
    assert 0 <= body["score"] <= 100


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "", "phone": "12345", "country": "US"}, "invalid_phone"),
        ({"user_agent": "python-requests/2.31"}, "bot"),
    ],
    ids=["invalid email", "invalid phone", "bot"],
)
def test_a_well_formed_lead_with_bad_data_is_stored_and_answered_invalid(supplier_client, campaign, fields, reason):
    response = supplier_client.post(LEADS, lead_body(campaign, **fields), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["validity"] == "invalid"
    assert reason in [text.split(":")[0] for text in body["validity_reasons"]]
    lead = Lead.objects.get()
    assert (str(lead.public_id), lead.validity, lead.validity_reasons) == (
        body["id"],
        "invalid",
        body["validity_reasons"],
    )


def test_a_lead_whose_numeric_answer_is_nan_is_stored_and_answered_disqualified(supplier_client, campaign):
    QualificationRuleFactory(offer=campaign.offer, field="answers.budget", operator=">=", value="1000")
    items = [lead_body(campaign, email=f"{name}@example.com", answers={"budget": "NaN"}) for name in ("ann", "bob")]

    single = supplier_client.post(LEADS, lead_body(campaign, answers={"budget": "NaN"}), format="json")
    batch = supplier_client.post(BATCH, {"leads": items}, format="json")

    assert single.status_code == 201, single.content
    assert single.json()["qualification_reasons"] == ["answers.budget >= 1000 (was NaN)"]
    assert batch.status_code == 200, batch.content
    assert [item["outcome"] for item in batch.json()["results"]] == ["created", "created"]
    assert Lead.objects.filter(qualification="disqualified").count() == 3


@pytest.mark.parametrize(
    "email", ["ann.smith\u200b@example.com", "ann.sm\u0456th@example.com"], ids=["zero-width space", "Cyrillic i"]
)
def test_an_email_in_disguise_is_stored_and_answered_suspect(supplier_client, campaign, email):
    response = supplier_client.post(LEADS, lead_body(campaign, email=email), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["validity"] == "suspect"
    assert [text.split(":")[0] for text in body["validity_reasons"]] == ["disguised_email"]
    assert Lead.objects.get().validity_reasons == body["validity_reasons"]


def test_a_duplicate_names_its_original_only_when_the_original_is_the_partners_own(partner_a, partner_b, campaign):
    client_a, client_b = client_with(make_key(partner_a)), client_with(make_key(partner_b))
    first = client_a.post(LEADS, lead_body(campaign), format="json").json()

    again_from_a = client_a.post(LEADS, lead_body(campaign, email="Ann.Smith@Example.com"), format="json")
    same_from_b = client_b.post(LEADS, lead_body(campaign), format="json")

    assert again_from_a.status_code == same_from_b.status_code == 201
    assert (again_from_a.json()["duplicate"], again_from_a.json()["duplicate_of"]) == (True, first["id"])
    assert (same_from_b.json()["duplicate"], same_from_b.json()["duplicate_of"]) == (True, None)
    original = Lead.objects.get(public_id=first["id"])
    assert set(Lead.objects.filter(is_duplicate=True).values_list("duplicate_of", flat=True)) == {original.pk}


def test_the_answer_is_what_the_documented_serializer_says(partner_a, partner_b, campaign):
    """The view builds its answer directly (lead_result); LeadResultSerializer documents it."""
    client_a, client_b = client_with(make_key(partner_a)), client_with(make_key(partner_b))
    client_a.post(LEADS, lead_body(campaign), format="json")
    client_a.post(LEADS, lead_body(campaign, email="Ann.Smith@Example.com", consent=True), format="json")
    client_b.post(LEADS, lead_body(campaign), format="json")
    client_b.post(LEADS, lead_body(campaign, email="not-an-email", user_agent="curl/8"), format="json")

    leads = list(Lead.objects.select_related("duplicate_of"))
    assert len(leads) == 4 and any(lead.validity_reasons for lead in leads)
    for lead in leads:
        for partner in (partner_a, partner_b, None):
            documented = dict(LeadResultSerializer(lead, context={"partner": partner}).data)
            assert lead_result(lead, partner=partner) == documented


# --- 3. structurally bad requests ------------------------------------------------------------
def _body(**fields):
    return lambda slug: json.dumps({"campaign": slug, "email": "jo@example.com", **fields})


STRUCTURAL_ERRORS = {
    "malformed json": (lambda slug: '{"campaign": "' + slug + '", "email": ', "parse_error", set()),
    "a list, not an object": (lambda slug: json.dumps([{"campaign": slug}]), "invalid", {"non_field_errors"}),
    "email as a list": (_body(email=["jo@example.com"]), "invalid", {"email"}),
    "company size many": (_body(company_size="many"), "invalid", {"company_size"}),
    "company size true": (_body(company_size=True), "invalid", {"company_size"}),
    "budget infinite": (_body(budget="Infinity"), "invalid", {"budget"}),
    "budget with a comma that is no separator": (_body(budget="1,234,56"), "invalid", {"budget"}),
    "consent perhaps": (_body(consent="perhaps"), "invalid", {"consent"}),
    "answers nested": (_body(answers={"when": {"month": "May"}}), "invalid", {"answers"}),
    "missing campaign": (lambda slug: json.dumps({"email": "jo@example.com"}), "invalid", {"campaign"}),
    "campaign a number": (lambda slug: json.dumps({"campaign": 7, "email": "jo@example.com"}), "invalid", {"campaign"}),
    "neither email nor phone": (
        lambda slug: json.dumps({"campaign": slug, "first_name": "Jo"}),
        "invalid",
        {"non_field_errors"},
    ),
    "unknown fields with other errors": (
        _body(email=["jo@example.com"], favourite_colour="blue", password="x"),
        "invalid",
        {"email", "favourite_colour", "password"},
    ),
    "10 kB first name": (_body(first_name="A" * 10_000), "invalid", {"first_name"}),
    "NUL character": (_body(first_name="Jo\x00hn"), "invalid", {"first_name"}),
    # json.dumps keeps "\ud800" as the six-character escape, as a partner's JSON library would send it.
    "lone surrogate": (_body(first_name="Jo\ud800"), "invalid", {"first_name"}),
    "NUL in an answer": (_body(answers={"when": "May\x00"}), "invalid", {"answers"}),
    "NUL in an answer's name": (_body(answers={"wh\x00en": "May"}), "invalid", {"answers"}),
    "lone surrogate in an answer": (_body(answers={"when": ["May", "\udfff"]}), "invalid", {"answers"}),
    "NUL in a sub id's name": (_body(sub_ids={"su\x00b1": "zone"}), "invalid", {"sub_ids"}),
    "deeply nested answers": (
        lambda slug: '{"campaign": "'
        + slug
        + '", "email": "jo@example.com", "answers": {"q": '
        + "[" * 100_000
        + "]" * 100_000
        + "}}",
        "parse_error",
        set(),
    ),
}


@pytest.mark.parametrize("case", STRUCTURAL_ERRORS)
def test_a_structurally_bad_lead_is_a_400_with_field_errors_and_stores_nothing(supplier_client, campaign, case):
    make_body, code, fields = STRUCTURAL_ERRORS[case]

    response = supplier_client.post(LEADS, make_body(campaign.slug), content_type="application/json")

    assert_error(response, 400, code, fields=fields)
    assert not Lead.objects.exists()


def test_the_lone_surrogate_case_really_sends_the_escape(campaign):
    assert "\\ud800" in STRUCTURAL_ERRORS["lone surrogate"][0](campaign.slug)


def test_emoji_and_right_to_left_text_are_accepted(supplier_client, campaign):
    body = lead_body(campaign, first_name="Zoë 🌞", last_name="שלום", company="شركة الأمل 🚀", answers={"🙂": "نعم"})

    response = supplier_client.post(LEADS, body, format="json")

    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert "🌞" in lead.first_name
    assert (lead.last_name, lead.company, lead.answers) == ("שלום", "شركة الأمل 🚀", {"🙂": "نعم"})


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", "campaign=solar-us&email=jo@example.com"),
        ("application/x-www-form-urlencoded", "campaign=solar-us&email=jo%40example.com"),
        ("application/xml", "<lead><campaign>solar-us</campaign></lead>"),
    ],
)
def test_a_body_that_is_not_json_is_415(supplier_client, campaign, content_type, data):
    response = supplier_client.post(LEADS, data, content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")
    assert not Lead.objects.exists()


def test_a_body_over_the_size_limit_is_413_and_one_at_the_limit_is_fine(supplier_client, campaign, settings):
    settings.API_MAX_BODY_BYTES = 300
    without_message = len(json.dumps(lead_body(campaign, message="")))
    fits = json.dumps(lead_body(campaign, message="x" * (300 - without_message)))
    too_big = json.dumps(lead_body(campaign, message="x" * (301 - without_message)))
    assert (len(fits.encode()), len(too_big.encode())) == (300, 301)

    refused = supplier_client.post(LEADS, too_big, content_type="application/json")
    assert_error(refused, 413, "request_too_large")
    assert not Lead.objects.exists()

    accepted = supplier_client.post(LEADS, fits, content_type="application/json")
    assert accepted.status_code == 201, accepted.content


# --- 4. Idempotency-Key ----------------------------------------------------------------------
def test_a_repeated_request_with_the_same_key_gets_the_first_answer_and_creates_nothing(supplier_client, campaign):
    first = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    # The same lead with its fields in another order and other spacing is the same request.
    repeat = supplier_client.post(
        LEADS,
        '{ "first_name": "Ann",  "email": "ann.smith@example.com", "campaign": "solar-us" }',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="order-1",
    )

    assert first.status_code == repeat.status_code == 201
    assert repeat.json() == first.json()
    assert Lead.objects.count() == 1


def test_the_same_key_with_a_different_body_is_422(supplier_client, campaign):
    supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")

    response = supplier_client.post(
        LEADS, lead_body(campaign, email="someone.else@example.com"), format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )

    assert_error(response, 422, "unprocessable")
    assert list(Lead.objects.values_list("email", flat=True)) == ["ann.smith@example.com"]


def test_the_same_key_and_body_from_two_partners_makes_two_leads(partner_a, partner_b, campaign):
    client_a, client_b = client_with(make_key(partner_a)), client_with(make_key(partner_b))

    from_a = client_a.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="k" * 200)
    from_b = client_b.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="k" * 200)

    assert from_a.status_code == from_b.status_code == 201
    assert from_a.json()["id"] != from_b.json()["id"]  # b is a duplicate of a, never a replay of a's answer
    assert from_b.json()["duplicate"] is True


def test_a_staff_user_repeating_a_key_gets_the_first_answer_and_creates_nothing(superuser, campaign):
    client = APIClient()
    client.force_login(superuser)

    first = client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="desk-1")
    repeat = client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="desk-1")
    other_body = client.post(
        LEADS, lead_body(campaign, email="other@example.com"), format="json", HTTP_IDEMPOTENCY_KEY="desk-1"
    )

    assert first.status_code == repeat.status_code == 201
    assert repeat.json() == first.json()
    assert_error(other_body, 422, "unprocessable")
    assert Lead.objects.count() == 1
    assert IdempotencyRecord.objects.get().user == superuser


def test_keys_are_per_partner(partner_a, partner_b, campaign):
    client_a, client_b = client_with(make_key(partner_a)), client_with(make_key(partner_b))

    from_a = client_a.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    from_b = client_b.post(
        LEADS, lead_body(campaign, email="bob@example.com"), format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )

    assert from_a.status_code == from_b.status_code == 201
    assert from_a.json()["id"] != from_b.json()["id"]
    assert Lead.objects.count() == 2


def test_a_key_older_than_24_hours_may_be_used_again(supplier_client, campaign):
    first = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - datetime.timedelta(hours=django_settings.IDEMPOTENCY_KEY_HOURS, minutes=1)
    )

    again = supplier_client.post(
        LEADS, lead_body(campaign, email="bob@example.com"), format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )

    assert again.status_code == 201, again.content
    assert again.json()["id"] != first.json()["id"]
    assert sorted(Lead.objects.values_list("email", flat=True)) == ["ann.smith@example.com", "bob@example.com"]
    assert IdempotencyRecord.objects.get().created_at > timezone.now() - datetime.timedelta(minutes=1)


def test_a_key_younger_than_24_hours_is_still_held(supplier_client, campaign):
    supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - datetime.timedelta(hours=django_settings.IDEMPOTENCY_KEY_HOURS, minutes=-1)
    )

    response = supplier_client.post(
        LEADS, lead_body(campaign, email="bob@example.com"), format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )

    assert_error(response, 422, "unprocessable")


def test_a_repeat_while_the_first_is_still_processing_is_409(supplier, supplier_client, campaign):
    body = lead_body(campaign)
    first = supplier_client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    # Play the first request still running: its record exists but has no answer yet.
    IdempotencyRecord.objects.update(status_code=None, response_body=None)

    response = supplier_client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")

    assert first.status_code == 201
    assert_error(response, 409, "conflict")
    assert Lead.objects.count() == 1


def test_a_key_being_processed_from_scratch_is_409(supplier, supplier_client, campaign):
    body = lead_body(campaign)
    IdempotencyRecord.objects.create(
        partner=supplier,
        key="order-1",
        request_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
    )

    response = supplier_client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")

    assert_error(response, 409, "conflict")
    assert not Lead.objects.exists()


@pytest.mark.parametrize("key", ["k" * 200, "order/ü/🚀"], ids=["longest", "unicode"])
def test_any_key_up_to_200_characters_works(supplier_client, campaign, key):
    first = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY=key)
    repeat = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert first.status_code == repeat.status_code == 201, first.content
    assert repeat.json() == first.json()
    assert Lead.objects.count() == 1


def test_a_key_over_200_characters_is_400(supplier_client, campaign):
    response = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="k" * 201)

    assert_error(response, 400, "invalid", fields={"Idempotency-Key"})
    assert not Lead.objects.exists()


def test_a_refused_request_does_not_use_up_its_key(supplier_client, campaign):
    refused = supplier_client.post(
        LEADS, {**lead_body(campaign), "campaign": "no-such-campaign"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )
    fixed = supplier_client.post(LEADS, lead_body(campaign), format="json", HTTP_IDEMPOTENCY_KEY="order-1")

    assert_error(refused, 400, "invalid", fields={"campaign"})
    assert fixed.status_code == 201
    assert Lead.objects.count() == 1


RACERS = 6


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_repeats_of_one_key_create_exactly_one_lead():
    campaign = CampaignFactory()
    partner = make_partner("Racing affiliate", campaigns=[campaign])
    raw_key = make_key(partner)
    body = lead_body(campaign)
    barrier = threading.Barrier(RACERS)
    answers, errors = [], []

    def submit() -> None:
        try:
            client = client_with(raw_key)
            barrier.wait(timeout=10)
            response = client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="same-key")
            answers.append((response.status_code, response.json()))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(answers) == RACERS
    lead = Lead.objects.get()
    created = [answer for status, answer in answers if status == 201]
    assert {status for status, _ in answers} <= {201, 409}
    assert created and all(answer["id"] == str(lead.public_id) for answer in created)
    assert all(answer == created[0] for answer in created)
    assert all(answer["error"]["code"] == "conflict" for status, answer in answers if status == 409)


# --- 5. batches ------------------------------------------------------------------------------
def test_a_batch_answers_every_item_in_order_and_stores_only_the_good_ones(supplier_client, campaign):
    items = [
        {"campaign": campaign.slug, "email": "good@example.com", "first_name": "Ann"},
        {"campaign": campaign.slug, "email": "GOOD@example.com"},
        {"campaign": campaign.slug, "first_name": "No contact"},
        {"campaign": "no-such-campaign", "email": "lost@example.com"},
        {"campaign": campaign.slug, "email": "typed@example.com", "company_size": "many"},
        "not an object",
        {"campaign": campaign.slug, "phone": "+1 650 555 1212", "country": "US"},
    ]

    response = supplier_client.post(BATCH, {"leads": items}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    results = body["results"]
    assert [item["index"] for item in results] == list(range(len(items)))
    assert [item["outcome"] for item in results] == [
        "created",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "created",
    ]
    assert results[1]["lead"]["duplicate_of"] == results[0]["lead"]["id"]
    assert set(results[0]["lead"]) == CONTRACT_KEYS
    rejected_fields = [set(item["error"]["fields"]) for item in results if item["outcome"] == "rejected"]
    assert rejected_fields == [{"non_field_errors"}, {"campaign"}, {"company_size"}, {"non_field_errors"}]
    assert all(item["lead"] is None and item["error"]["code"] == "invalid" for item in results[2:6])
    assert all(item["error"] is None for item in (results[0], results[1], results[6]))
    stored = {str(public_id) for public_id in Lead.objects.values_list("public_id", flat=True)}
    assert stored == {results[index]["lead"]["id"] for index in (0, 1, 6)}


def test_a_batch_item_the_database_refuses_is_rejected_alone_and_the_others_are_stored(
    supplier_client, campaign, database_refuses_first_name, caplog
):
    database_refuses_first_name("Refused")
    items = [
        {"campaign": campaign.slug, "email": "before@example.com"},
        {"campaign": campaign.slug, "email": "refused@example.com", "first_name": "Refused"},
        {"campaign": campaign.slug, "email": "after@example.com"},
    ]

    with caplog.at_level(logging.ERROR, logger="leads.api.views"):
        response = supplier_client.post(BATCH, {"leads": items}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["rejected"]) == (2, 1)
    refused = body["results"][1]
    assert (refused["outcome"], refused["lead"], refused["error"]["code"]) == ("rejected", None, "unprocessable")
    assert "The database refused this lead, so it was not stored (the others were)" in refused["error"]["message"]
    assert set(Lead.objects.values_list("email", flat=True)) == {"before@example.com", "after@example.com"}
    # The log says which item and why, without the person's data.
    assert "Batch item 1 not stored" in caplog.text and "refused@example.com" not in caplog.text


def test_a_null_batch_item_is_rejected_alone_as_any_other_bad_item(supplier_client, campaign):
    # The schema lets an item be any JSON value, each checked as POST /leads/ checks one; null was once
    # refused for the whole batch, with errors nested where the error shape promises a list of messages.
    items = [None, {"campaign": campaign.slug, "email": "kept@example.com"}]

    response = supplier_client.post(BATCH, {"leads": items}, format="json")

    assert response.status_code == 200, response.content
    rejected, created = response.json()["results"]
    assert rejected["outcome"] == "rejected" and rejected["lead"] is None
    assert rejected["error"] == {
        "code": "invalid",
        "message": "Send one lead as a JSON object.",
        "fields": {"non_field_errors": ["Expected an object."]},
    }
    assert created["outcome"] == "created"
    assert list(Lead.objects.values_list("email", flat=True)) == ["kept@example.com"]


def test_a_batch_sent_with_an_idempotency_key_still_stores_every_lead(supplier_client, campaign):
    items = [lead_body(campaign, email="one@example.com"), lead_body(campaign, email="two@example.com")]

    response = supplier_client.post(BATCH, {"leads": items}, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")

    assert response.status_code == 200, response.content
    assert [item["outcome"] for item in response.json()["results"]] == ["created", "created"]
    assert sorted(Lead.objects.values_list("email", flat=True)) == ["one@example.com", "two@example.com"]


@pytest.mark.parametrize(
    "item",
    [
        {"campaign": "solar-us", "email": "jo@example.com", "sub_ids": {"sub1": ["a", "list"]}},
        {"campaign": "solar-us", "email": ["jo@example.com"], "colour": "blue", "consent": "perhaps"},
        {"campaign": "solar-us", "email": "jo@example.com", "answers": {"when": "May\x00"}},
    ],
    ids=["nested", "several fields", "answers"],
)
def test_a_rejected_batch_item_reports_the_field_errors_a_single_post_would(supplier_client, campaign, item):
    single = supplier_client.post(LEADS, item, format="json")

    batch = supplier_client.post(BATCH, {"leads": [item]}, format="json")

    assert single.status_code == 400 and batch.status_code == 200
    (result,) = batch.json()["results"]
    assert result["outcome"] == "rejected"
    assert result["error"]["fields"] == single.json()["error"]["fields"]
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    "make_body",
    [
        lambda campaign: {"leads": [lead_body(campaign)] * (django_settings.API_BATCH_MAX_LEADS + 1)},
        lambda campaign: {"leads": []},
        lambda campaign: {"leads": lead_body(campaign)},
        lambda campaign: {},
    ],
    ids=["too many", "empty", "not a list", "no leads"],
)
def test_a_batch_of_the_wrong_shape_is_400_and_stores_nothing(supplier_client, campaign, make_body):
    response = supplier_client.post(BATCH, make_body(campaign), format="json")

    assert_error(response, 400, "invalid", fields={"leads"})
    assert not Lead.objects.exists()


def test_a_batch_of_the_maximum_size_is_accepted(supplier_client, campaign, settings):
    settings.API_MAX_BODY_BYTES = 10 * 1024 * 1024
    items = [{"campaign": campaign.slug, "first_name": "No contact"}] * django_settings.API_BATCH_MAX_LEADS

    response = supplier_client.post(BATCH, {"leads": items}, format="json")

    assert response.status_code == 200
    assert response.json()["rejected"] == django_settings.API_BATCH_MAX_LEADS


# --- 6. sandbox keys -------------------------------------------------------------------------
def test_a_sandbox_lead_is_stored_as_test_and_queues_no_follow_ups(
    supplier, campaign, django_capture_on_commit_callbacks
):
    live = client_with(make_key(supplier))
    sandbox = client_with(make_key(supplier, sandbox=True))

    with django_capture_on_commit_callbacks(execute=True):
        test_answer = sandbox.post(LEADS, lead_body(campaign, email="sandbox@example.com"), format="json")
        live_answer = live.post(LEADS, lead_body(campaign, email="live@example.com"), format="json")

    assert test_answer.status_code == live_answer.status_code == 201
    assert (test_answer.json()["test"], live_answer.json()["test"]) == (True, False)
    test_lead = Lead.objects.get(public_id=test_answer.json()["id"])
    live_lead = Lead.objects.get(public_id=live_answer.json()["id"])
    assert (test_lead.is_test, live_lead.is_test) == (True, False)
    assert not OutboxEntry.objects.filter(lead=test_lead).exists()
    assert OutboxEntry.objects.filter(lead=live_lead).exists()  # the same lead, live, does queue work


def test_a_sandbox_batch_marks_every_lead_test(supplier, campaign):
    sandbox = client_with(make_key(supplier, sandbox=True))

    response = sandbox.post(
        BATCH, {"leads": [lead_body(campaign), lead_body(campaign, email="b@example.com")]}, format="json"
    )

    assert [item["lead"]["test"] for item in response.json()["results"]] == [True, True]
    assert list(Lead.objects.values_list("is_test", flat=True)) == [True, True]
    assert not OutboxEntry.objects.exists()


# --- 7. rate limit ---------------------------------------------------------------------------
def test_the_request_over_the_partners_limit_is_429_with_retry_after(supplier, campaign):
    supplier.rate_limit_per_minute = 2
    supplier.save()
    raw_key = make_key(supplier)
    client = client_with(raw_key)

    answers = [client.get(CAMPAIGNS).status_code, client.get(CAMPAIGNS).status_code]
    throttled = client.post(LEADS, lead_body(campaign), format="json")
    other_key = client_with(make_key(supplier)).get(CAMPAIGNS)

    assert answers == [200, 200]
    assert_error(throttled, 429, "throttled")
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert not Lead.objects.exists()
    assert other_key.status_code == 429  # one limit per partner: a second key does not double it


# --- 8. GET /leads/ --------------------------------------------------------------------------
def test_cursor_pages_follow_next_without_repeats_or_gaps(supplier, supplier_client, campaign):
    now = timezone.now()
    # Two leads share a timestamp: the cursor must still neither repeat nor skip one.
    leads = [
        LeadFactory(partner=supplier, campaign=campaign, created_at=now - datetime.timedelta(minutes=m))
        for m in (1, 2, 2, 3, 4)
    ]

    first = supplier_client.get(LEADS, {"page_size": 2}).json()
    second = supplier_client.get(first["next"]).json()
    third = supplier_client.get(second["next"]).json()

    pages = [first["results"], second["results"], third["results"]]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert third["next"] is None
    ids = [item["id"] for page in pages for item in page]
    assert len(set(ids)) == len(ids) == len(leads)
    assert set(ids) == {str(lead.public_id) for lead in leads}
    assert ids[0] == str(leads[0].public_id) and ids[-1] == str(leads[-1].public_id)


@pytest.fixture
def filter_leads(supplier, campaign):
    other_campaign = CampaignFactory(slug="roofing-de")
    supplier.campaigns.add(other_campaign)
    now = timezone.now()
    return {
        "old new valid us": LeadFactory(
            partner=supplier, campaign=campaign, country="US", created_at=now - datetime.timedelta(days=3)
        ),
        "contacted invalid de": LeadFactory(
            partner=supplier,
            campaign=campaign,
            status="contacted",
            validity="invalid",
            country="DE",
            created_at=now - datetime.timedelta(days=1),
        ),
        "other campaign suspect": LeadFactory(
            partner=supplier, campaign=other_campaign, validity="suspect", country="US", created_at=now
        ),
    }


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "contacted"}, {"contacted invalid de"}),
        ({"validity": "invalid"}, {"contacted invalid de"}),
        ({"validity": "valid"}, {"old new valid us"}),
        ({"campaign": "roofing-de"}, {"other campaign suspect"}),
        ({"country": "de"}, {"contacted invalid de"}),
        ({"country": "US", "campaign": "solar-us"}, {"old new valid us"}),
        ({"created_after": 2}, {"contacted invalid de", "other campaign suspect"}),
        ({}, {"old new valid us", "contacted invalid de", "other campaign suspect"}),
    ],
)
def test_the_list_filters(supplier_client, filter_leads, params, expected):
    if "created_after" in params:
        params = {"created_after": (timezone.now() - datetime.timedelta(days=params["created_after"])).isoformat()}

    response = supplier_client.get(LEADS, params)

    assert response.status_code == 200, response.content
    names = {str(lead.public_id): name for name, lead in filter_leads.items()}
    assert {names[item["id"]] for item in response.json()["results"]} == expected


@pytest.mark.parametrize("params", [{"status": "bogus"}, {"validity": "great"}, {"created_after": "yesterday"}])
def test_a_bad_filter_value_is_a_400_not_an_empty_list(supplier_client, filter_leads, params):
    response = supplier_client.get(LEADS, params)

    assert_error(response, 400, "invalid", fields=set(params))


# A partner's key, its "last used" stamp and the page (or a session, its user and the page): whatever the page size.
LIST_QUERY_CEILING = 3


@pytest.mark.parametrize("count", [3, 40])
def test_the_partner_list_costs_the_same_queries_for_3_or_40_leads(
    supplier, supplier_client, campaign, count, django_assert_max_num_queries
):
    original = LeadFactory(partner=supplier, campaign=campaign)
    LeadFactory.create_batch(count - 1, partner=supplier, campaign=campaign, is_duplicate=True, duplicate_of=original)

    with django_assert_max_num_queries(LIST_QUERY_CEILING):
        response = supplier_client.get(LEADS)

    assert len(response.json()["results"]) == count
    assert {item["duplicate_of"] for item in response.json()["results"][:-1]} == {str(original.public_id)}


@pytest.mark.parametrize("count", [3, 40])
def test_the_staff_list_costs_the_same_queries_for_3_or_40_leads(
    staff_user_in, campaign, count, django_assert_max_num_queries
):
    rep = staff_user_in("Sales")
    LeadFactory.create_batch(count, campaign=campaign, assigned_to=rep)
    client = APIClient()
    client.force_login(rep)

    # A rep's permissions cost two more queries (user and group permissions), once per request, and
    # the staff read one more: its row in the access log.
    with django_assert_max_num_queries(LIST_QUERY_CEILING + 3):
        response = client.get(LEADS)

    assert len(response.json()["results"]) == count


@pytest.mark.parametrize("count", [3, 20])
def test_the_campaign_list_costs_the_same_queries_for_3_or_20_campaigns(
    supplier, supplier_client, campaign, count, django_assert_max_num_queries
):
    campaigns = CampaignFactory.create_batch(count - 1)
    pages = {other.slug: LandingPageFactory(campaign=other).slug for other in campaigns}
    pages[campaign.slug] = "solar-form"
    supplier.campaigns.add(*campaigns)

    with django_assert_max_num_queries(LIST_QUERY_CEILING):
        response = supplier_client.get(CAMPAIGNS)

    assert response.status_code == 200
    landing_urls = {row["slug"]: row["landing_url"] for row in response.json()}
    assert landing_urls == {slug: f"{django_settings.SITE_URL}/l/{page}/" for slug, page in pages.items()}


# --- 9. the request log line ----------------------------------------------------------------
def test_every_request_is_logged_without_personal_data(supplier, campaign, caplog):
    key, raw_key = api_key_create(partner=supplier, scopes=ALL_SCOPES)
    caplog.set_level(logging.INFO, logger="leadcrm.api")
    body = lead_body(campaign, email="private.person@example.com", phone="+1 650 555 0199", last_name="Hidden")

    response = client_with(raw_key).post(LEADS, body, format="json")

    assert response.status_code == 201
    lines = [record.getMessage() for record in caplog.records if record.name == "leadcrm.api"]
    assert len(lines) == 1
    assert "POST /api/v1/leads/" in lines[0]
    assert "status=201" in lines[0]
    assert f"partner={supplier.pk}" in lines[0]
    assert f"key={key.prefix}" in lines[0]
    assert re.search(r"latency_ms=\d+", lines[0])
    for personal in ("private.person", "+16505550199", "650 555 0199", "Hidden", raw_key):
        assert personal not in lines[0]


def test_a_refused_request_is_logged_without_a_partner(caplog):
    caplog.set_level(logging.INFO, logger="leadcrm.api")

    response = client_with("lcrm_0badc0de_" + "x" * 43).get(LEADS)

    assert response.status_code == 401
    (line,) = [record.getMessage() for record in caplog.records if record.name == "leadcrm.api"]
    assert "GET /api/v1/leads/ status=401 partner=- key=-" in line
    assert "x" * 43 not in line


# --- 10. manage.py create_api_key ------------------------------------------------------------
def test_create_api_key_makes_the_partner_and_prints_a_working_key_last(campaign):
    other = CampaignFactory(slug="roofing-de")
    out = StringIO()

    call_command(
        "create_api_key",
        "Acme Leads",
        "--role=supplier",
        "--scopes=leads:write,leads:read",
        f"--campaign={campaign.slug}",
        "--campaign=roofing-de",
        stdout=out,
    )

    raw_key = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"lcrm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", raw_key)
    partner = Partner.objects.get(name="Acme Leads")
    assert partner.role == "supplier"
    assert set(partner.campaigns.all()) == {campaign, other}
    key = partner.api_keys.get()
    assert (key.scopes, key.is_sandbox) == (["leads:write", "leads:read"], False)
    assert raw_key not in out.getvalue().splitlines()[0]
    response = client_with(raw_key).post(LEADS, lead_body(campaign), format="json")
    assert response.status_code == 201
    assert Lead.objects.get().partner == partner
    assert client_with(raw_key).get(CAMPAIGNS).status_code == 403  # not a scope it was given


def test_create_api_key_adds_a_key_to_an_existing_partner(supplier, campaign):
    out = StringIO()

    call_command("create_api_key", supplier.name, "--scopes=leads:write", "--sandbox", stdout=out)

    raw_key = out.getvalue().splitlines()[-1]
    assert Partner.objects.count() == 1
    key = supplier.api_keys.get()
    assert key.is_sandbox
    response = client_with(raw_key).post(LEADS, lead_body(campaign), format="json")
    assert response.json()["test"] is True


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--scopes=leads:write,leads:delete", "--campaign=solar-us"], "leads:delete"),
        (["--scopes=", "--campaign=solar-us"], "none"),
        (["--scopes=leads:write", "--campaign=solar-us", "--campaign=no-such"], "no-such"),
    ],
    ids=["bad scope", "no scope", "unknown campaign"],
)
def test_create_api_key_refuses_bad_input_and_creates_nothing(campaign, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "Acme Leads", *arguments, stdout=StringIO())

    assert not Partner.objects.exists()


@pytest.mark.parametrize(
    "value, expected",
    [("2000-01-01T00:00:00+16:00", 200), ("0001-01-01T00:00:00+05:00", 400), ("9999-12-31T23:59:59-05:00", 400)],
)
def test_extreme_date_filters_are_answered_not_crashed(value, expected):
    partner = Partner.objects.create(name="Dates")
    _, raw_key = api_key_create(partner=partner, scopes=["leads:read"])
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    response = client.get("/api/v1/leads/", {"created_after": value})

    assert response.status_code == expected
    if expected == 400:
        assert response.json()["error"]["fields"]["created_after"] == [
            "Enter a date and time between the years 1 and 9999."
        ]

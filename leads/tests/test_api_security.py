"""Who may see and change what through the API, beyond the scope matrix (from a security review)."""

import base64
import datetime
import hashlib
import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.tests.factories import CampaignFactory
from leads.models import IdempotencyRecord, Lead, Partner
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


def client_for(partner, scopes, sandbox=False):
    _, raw_key = api_key_create(partner=partner, scopes=scopes, sandbox=sandbox)
    return APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")


LEAD = {"campaign": "solar", "action": "quote", "email": "jo@example.com", "country": "US"}


@pytest.fixture
def campaign():
    return CampaignFactory(slug="solar")


def test_a_supplier_and_buyer_cannot_report_outcomes_on_leads_it_supplied(campaign):
    partner = Partner.objects.create(name="Both", role="both", advertiser=campaign.offer.advertiser)
    partner.campaigns.add(campaign)
    own = LeadFactory(campaign=campaign, partner=partner, validity="invalid")
    client = client_for(partner, ["leads:read", "outcomes:write"])

    response = client.post(
        f"/api/v1/leads/{own.public_id}/outcome/", {"outcome": "converted", "sale_amount": "500"}, format="json"
    )

    assert response.status_code == 404
    own.refresh_from_db()
    assert own.status == "new" and own.sale_amount is None


def test_a_sales_rep_cannot_report_outcomes_on_a_lead_they_do_not_work(client, staff_user_in, campaign):
    queued = LeadFactory(campaign=campaign)
    client.force_login(staff_user_in("Sales"))

    response = client.post(
        f"/api/v1/leads/{queued.public_id}/outcome/",
        {"outcome": "converted", "sale_amount": "10"},
        content_type="application/json",
    )

    assert response.status_code == 403
    queued.refresh_from_db()
    assert queued.status == "new"


def test_partners_never_see_sale_money_staff_notes_or_another_suppliers_tracking(campaign):
    supplier = Partner.objects.create(name="Supplier")
    buyer = Partner.objects.create(name="Buyer", role="buyer", advertiser=campaign.offer.advertiser)
    lead = LeadFactory(
        campaign=campaign,
        partner=supplier,
        status="won",
        sale_amount=Decimal("900"),
        sale_currency="USD",
        status_reason="reported by the buyer",
        click_id="clk-9",
        sub_ids={"sub1": "zone"},
    )

    as_supplier = client_for(supplier, ["leads:read"]).get(f"/api/v1/leads/{lead.public_id}/").json()
    as_buyer = client_for(buyer, ["leads:read"]).get(f"/api/v1/leads/{lead.public_id}/").json()

    for body in (as_supplier, as_buyer):
        assert not {"sale_amount", "sale_currency", "status_reason"} & set(body)
    assert as_supplier["click_id"] == "clk-9"
    assert "click_id" not in as_buyer and "sub_ids" not in as_buyer


def test_a_forged_cursor_is_a_400_not_a_500(campaign):
    partner = Partner.objects.create(name="Cursor")
    cursor = base64.b64encode(b"p=notadate").decode()

    response = client_for(partner, ["leads:read"]).get("/api/v1/leads/", {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_a_postback_body_that_is_not_an_object_is_a_400(client):
    response = client.post("/postback/", "[]", content_type="application/json")
    assert response.status_code == 400


def test_head_needs_the_read_scope_like_get(campaign):
    partner = Partner.objects.create(name="Writer")
    assert client_for(partner, ["leads:write"]).head("/api/v1/leads/").status_code == 403
    assert client_for(partner, ["leads:read"]).head("/api/v1/leads/").status_code == 200


def test_sandbox_and_live_keys_never_share_idempotent_answers(campaign):
    partner = Partner.objects.create(name="Keys")
    partner.campaigns.add(campaign)

    sandbox = client_for(partner, ["leads:write"], sandbox=True).post(
        "/api/v1/leads/", LEAD, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    live = client_for(partner, ["leads:write"]).post("/api/v1/leads/", LEAD, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (sandbox.status_code, sandbox.json()["test"]) == (201, True)
    assert (live.status_code, live.json()["test"]) == (201, False)
    assert sorted(Lead.objects.values_list("is_test", flat=True)) == [False, True]


def test_a_first_request_that_died_mid_way_frees_its_key_after_a_minute(campaign):
    partner = Partner.objects.create(name="Crashy")
    partner.campaigns.add(campaign)
    same_body = hashlib.sha256(json.dumps(LEAD, sort_keys=True).encode()).hexdigest()
    record = IdempotencyRecord.objects.create(partner=partner, key="k-2", request_hash=same_body)
    client = client_for(partner, ["leads:write"])

    assert client.post("/api/v1/leads/", LEAD, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 409
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=2))
    response = client.post("/api/v1/leads/", LEAD, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    assert response.status_code == 201
    assert Lead.objects.count() == 1


def test_a_sales_rep_report_has_no_money_and_only_their_leads(client, staff_user_in, campaign):
    rep = staff_user_in("Sales")
    LeadFactory(campaign=campaign, assigned_to=rep)
    LeadFactory(campaign=campaign, assigned_to=staff_user_in("Sales"))
    client.force_login(rep)
    today = timezone.localdate().isoformat()

    rows = client.get("/api/v1/reports/", {"date_from": today, "date_to": today}).json()["rows"]

    assert [row["leads"] for row in rows] == [1]
    assert "spend" not in rows[0] and "revenue" not in rows[0]

"""Partner API: buyer outcomes and returns, advertiser postbacks and the OpenAPI schema (schemathesis
runs over it in leadcrm/tests/test_api_schema.py)."""

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.services import advertiser_postback_token_rotate
from campaigns.tests.factories import (
    AdvertiserFactory,
    OfferFactory,
)
from leadcrm.staff_login.tokens import staff_token_create
from leads.models import ApiScope, Lead, LeadEvent, LeadOutcome, LedgerEntry, Partner
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory, delivered

pytestmark = pytest.mark.django_db

REVENUE_KINDS = [
    LedgerEntry.Kind.LEAD_SOLD,
    LedgerEntry.Kind.LEAD_RETURNED,
    LedgerEntry.Kind.SALE_COMMISSION,
    LedgerEntry.Kind.SALE_REVERSED,
]


def api_client(partner: Partner, scopes: list[str]) -> APIClient:
    _, raw_key = api_key_create(partner=partner, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def outcome_url(lead: Lead) -> str:
    return reverse("api-lead-outcome", args=[lead.public_id])


def booked_revenue(lead: Lead) -> dict[str, Decimal]:
    """The lead's net revenue in the money ledger, by currency: what reports add up."""
    revenue = LedgerEntry.objects.filter(lead=lead, kind__in=REVENUE_KINDS)
    return dict(revenue.values_list("currency").annotate(total=Sum("amount")).order_by())


# --- Outcomes ---------------------------------------------------------------------------------


@pytest.fixture
def offer(db):
    return OfferFactory(return_window_days=7, currency="USD")


@pytest.fixture
def buyer(offer):
    return Partner.objects.create(name="Solar Buyer", role=Partner.Role.BUYER, advertiser=offer.advertiser)


@pytest.fixture
def buyer_client(buyer):
    return api_client(buyer, [ApiScope.OUTCOMES_WRITE])


@pytest.fixture
def lead(offer):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - timedelta(days=2))
    delivered(lead)  # sold to the buyer: the only leads it may report on
    return lead


def test_buyer_reports_contacted_and_the_new_lead_becomes_contacted(buyer_client, buyer, lead):
    response = buyer_client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["lead"]["id"], body["lead"]["status"]) == (
        "contacted",
        str(lead.public_id),
        "contacted",
    )
    lead.refresh_from_db()
    assert lead.status == "contacted" and lead.first_contacted_at is not None
    assert list(LeadOutcome.objects.values_list("lead", "partner", "kind")) == [(lead.pk, buyer.pk, "contacted")]


def test_buyer_reports_a_sale_and_the_lead_is_won_with_its_amount_counted_as_revenue(buyer_client, lead):
    response = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "1250.00", "currency": "eur", "external_reference": "sale-1"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["sale_amount"], body["currency"], body["external_reference"]) == (
        "converted",
        "1250.00",
        "EUR",
        "sale-1",
    )
    assert body["lead"]["status"] == "won"
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("1250.00"), "EUR")
    assert lead.converted_at is not None
    # Booked in the currency it was reported in; reports list it apart from the offer's USD.
    assert booked_revenue(lead) == {"EUR": Decimal("1250.00")}


@pytest.mark.parametrize("age", [timedelta(hours=1), timedelta(days=7) - timedelta(minutes=5)])
def test_return_within_the_window_marks_the_lead_returned_and_reverses_its_revenue(buyer_client, offer, age):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - age)
    delivered(lead)
    sale = {"outcome": "converted", "sale_amount": "300.00", "external_reference": "sale-7"}
    assert buyer_client.post(outcome_url(lead), sale, format="json").status_code == 201
    assert booked_revenue(lead) == {"USD": Decimal("300.00")}

    response = buyer_client.post(
        outcome_url(lead),
        {"outcome": "returned", "reason": "not_interested", "note": "never asked", "external_reference": "return-7"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["reason"], response.json()["lead"]["status"]) == ("not_interested", "returned")
    lead.refresh_from_db()
    assert lead.status == "returned" and lead.returned_at is not None
    assert lead.status_reason == "not_interested: never asked"
    assert booked_revenue(lead) == {"USD": Decimal("0.00")}  # the sale and its reversal
    assert list(lead.outcomes.order_by("created_at").values_list("kind", flat=True)) == ["converted", "returned"]


@pytest.mark.parametrize("age", [timedelta(days=7, minutes=5), timedelta(days=40)])
def test_return_after_the_window_is_refused_with_the_window_named_and_nothing_changes(buyer_client, offer, age):
    lead = LeadFactory(campaign__offer=offer, created_at=timezone.now() - age, status="won", sale_amount=Decimal("80"))
    delivered(lead)

    response = buyer_client.post(outcome_url(lead), {"outcome": "returned", "reason": "fraud"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "return window of this offer (7 days) ended on" in error["message"]
    assert error["fields"] == {"reason": ["Outside the return window."]}
    lead.refresh_from_db()
    assert (lead.status, lead.returned_at, lead.sale_amount) == ("won", None, Decimal("80.00"))
    assert not LeadOutcome.objects.exists()
    assert not lead.events.exists()


def test_the_same_external_reference_again_returns_the_first_outcome_and_stores_nothing_new(buyer_client, lead):
    first = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "99.90", "external_reference": "crm-42"},
        format="json",
    )
    again = buyer_client.post(
        outcome_url(lead),
        {"outcome": "converted", "sale_amount": "5000.00", "external_reference": "crm-42"},
        format="json",
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["sale_amount"] == "99.90"
    assert LeadOutcome.objects.count() == 1
    assert lead.events.filter(kind=LeadEvent.Kind.OUTCOME).count() == 1
    lead.refresh_from_db()
    assert lead.sale_amount == Decimal("99.90")


@pytest.mark.parametrize("same_lead", [True, False], ids=["other-outcome-same-lead", "same-outcome-other-lead"])
def test_the_same_reference_for_a_different_outcome_is_a_conflict(buyer_client, offer, lead, same_lead):
    first = buyer_client.post(outcome_url(lead), {"outcome": "contacted", "external_reference": "ref-1"}, format="json")
    assert first.status_code == 201
    other_lead = lead if same_lead else LeadFactory(campaign__offer=offer)
    if not same_lead:
        delivered(other_lead)
    body = (
        {"outcome": "converted", "sale_amount": "10.00", "external_reference": "ref-1"}
        if same_lead
        else {"outcome": "contacted", "external_reference": "ref-1"}
    )

    response = buyer_client.post(outcome_url(other_lead), body, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "ref-1" in response.json()["error"]["message"]
    assert LeadOutcome.objects.count() == 1
    other_lead.refresh_from_db()
    assert other_lead.status == ("contacted" if same_lead else "new")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"outcome": "converted"}, "sale_amount"),
        ({"outcome": "converted", "sale_amount": "0.00"}, "sale_amount"),
        ({"outcome": "converted", "sale_amount": "-5"}, "sale_amount"),
        ({"outcome": "returned"}, "reason"),
        ({"outcome": "returned", "reason": "changed my mind"}, "reason"),
        ({"outcome": "won"}, "outcome"),
        ({"outcome": "converted", "sale_amount": "10", "currency": "EURO"}, "currency"),
        ({"outcome": "converted", "sale_amount": "10", "currency": "ZZZ"}, "currency"),
    ],
)
def test_an_outcome_without_what_it_needs_is_400_and_changes_nothing(buyer_client, lead, body, field):
    response = buyer_client.post(outcome_url(lead), body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


def test_a_supplier_only_partner_gets_404_even_for_a_lead_it_sent(offer):
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    lead = LeadFactory(campaign__offer=offer, partner=supplier)
    client = api_client(supplier, [ApiScope.OUTCOMES_WRITE, ApiScope.LEADS_READ])
    assert client.get(reverse("api-lead", args=[lead.public_id])).status_code == 200  # it can see the lead

    response = client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize(
    "lead_kwargs",
    [
        {"campaign__offer__name": "Another advertiser's offer"},
        {"validity": "invalid"},
        {"is_duplicate": True},
        {"is_test": True},
        {"delivery": "rejected"},
        {"delivery": None},
    ],
    ids=["other-advertiser", "invalid", "duplicate", "test", "rejected-by-buyer", "not-delivered"],
)
def test_a_buyer_gets_404_for_leads_it_was_not_sold(buyer_client, offer, lead_kwargs):
    delivery = lead_kwargs.pop("delivery", None)
    other_advertiser = "campaign__offer__name" in lead_kwargs
    if not other_advertiser:
        lead_kwargs = {**lead_kwargs, "campaign__offer": offer}
    lead = LeadFactory(**lead_kwargs)
    if other_advertiser:
        delivered(lead)  # sold, but to its own advertiser, not to this buyer's
    elif delivery:
        delivered(lead, status=delivery)

    response = buyer_client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")

    assert response.status_code == 404
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


# --- Advertiser postback in -------------------------------------------------------------------


@pytest.fixture
def postback_token(offer):
    return advertiser_postback_token_rotate(advertiser=offer.advertiser)


def test_a_sale_postback_by_click_id_wins_the_lead_with_the_payout_as_sale_amount(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-1")

    response = client.get(
        "/postback/", {"token": postback_token, "click_id": "clk-1", "status": "sale", "payout": "42.50"}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["outcome"], body["sale_amount"], body["lead"]["status"]) == ("converted", "42.50", "won")
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("42.50"), "USD")
    assert booked_revenue(lead) == {"USD": Decimal("42.50")}


@pytest.mark.parametrize("payout", [None, "0"])
def test_a_sale_postback_without_a_payout_books_the_offers_payout_per_sale(client, offer, postback_token, payout):
    offer.payout_per_sale = Decimal("30.00")
    offer.save()
    lead = LeadFactory(campaign__offer=offer, click_id="clk-1")
    query = {"token": postback_token, "click_id": "clk-1", "status": "sale", **({"payout": payout} if payout else {})}

    response = client.get("/postback/", query)

    assert response.status_code == 201, response.json()
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("30.00"), "USD")
    assert booked_revenue(lead) == {"USD": Decimal("30.00")}


def test_a_sale_postback_by_a_click_id_two_leads_share_wins_the_original_not_its_duplicate(
    client, offer, postback_token
):
    original = LeadFactory(campaign__offer=offer, click_id="clk-77", created_at=timezone.now() - timedelta(minutes=5))
    duplicate = LeadFactory(campaign__offer=offer, click_id="clk-77", is_duplicate=True, duplicate_of=original)

    response = client.get(
        "/postback/", {"token": postback_token, "click_id": "clk-77", "status": "sale", "payout": "50"}
    )

    assert response.status_code == 201, response.json()
    original.refresh_from_db()
    duplicate.refresh_from_db()
    assert (original.status, duplicate.status) == ("won", "new")
    assert booked_revenue(original) == {"USD": Decimal("50.00")} and booked_revenue(duplicate) == {}


def test_a_lead_postback_by_lead_id_is_recorded_as_accepted_and_leaves_the_status(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer)

    response = client.post(
        "/postback/",
        {"token": postback_token, "lead_id": str(lead.public_id), "status": "lead", "payout": "20"},
        content_type="application/json",
    )

    assert response.status_code == 201, response.json()
    assert list(LeadOutcome.objects.values_list("lead", "partner", "kind", "sale_amount")) == [
        (lead.pk, None, "accepted", Decimal("20.00"))
    ]
    lead.refresh_from_db()
    assert lead.status == "new"


def test_a_return_postback_within_the_window_returns_the_lead(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-r", created_at=timezone.now() - timedelta(days=1))

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-r", "status": "return"})

    assert response.status_code == 201, response.json()
    assert (response.json()["outcome"], response.json()["lead"]["status"]) == ("returned", "returned")
    lead.refresh_from_db()
    assert lead.status == "returned" and lead.returned_at is not None


def test_a_return_postback_after_the_window_is_refused(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-r", created_at=timezone.now() - timedelta(days=8))

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-r", "status": "return"})

    assert response.status_code == 400
    assert "(7 days)" in response.json()["error"]["message"]
    lead.refresh_from_db()
    assert (lead.status, lead.returned_at) == ("new", None)
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize("which", ["unknown", "rotated-away"])
def test_a_postback_with_an_unknown_or_rotated_token_is_401(client, offer, postback_token, which):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-1")
    advertiser_postback_token_rotate(advertiser=offer.advertiser)  # the fixture's token stops working
    token = "not-a-token" if which == "unknown" else postback_token

    response = client.get("/postback/", {"token": token, "click_id": "clk-1", "status": "sale", "payout": "1"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    lead.refresh_from_db()
    assert lead.status == "new"
    assert not LeadOutcome.objects.exists()


@pytest.mark.parametrize("owner", ["nobody", "other-advertiser", "test-lead"])
def test_a_postback_for_a_click_id_not_among_the_advertisers_leads_is_404(client, offer, postback_token, owner):
    if owner == "other-advertiser":
        LeadFactory(click_id="clk-x")
    elif owner == "test-lead":
        LeadFactory(campaign__offer=offer, click_id="clk-x", is_test=True)

    response = client.get("/postback/", {"token": postback_token, "click_id": "clk-x", "status": "sale", "payout": "9"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not LeadOutcome.objects.exists()


def test_a_postback_without_click_id_or_lead_id_is_400(client, postback_token):
    response = client.get("/postback/", {"token": postback_token, "status": "sale", "payout": "9"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"non_field_errors": ["Give click_id or lead_id."]}


@pytest.mark.parametrize("reference", ["order-77", "r" * 200], ids=["short", "200-characters"])
def test_the_same_postback_reference_twice_records_one_outcome(client, offer, postback_token, reference):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-2")
    params = {"token": postback_token, "click_id": "clk-2", "status": "sale", "payout": "30", "reference": reference}

    first = client.get("/postback/", params)
    again = client.get("/postback/", {**params, "payout": "31"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert LeadOutcome.objects.filter(lead=lead).count() == 1
    lead.refresh_from_db()
    assert lead.sale_amount == Decimal("30.00")


# --- Who reported it ---------------------------------------------------------------------------


def reporters() -> list[tuple]:
    return list(
        LeadOutcome.objects.values_list("reported_by", "partner", "advertiser", "reported_by_user", "kind").order_by(
            "id"
        )
    )


def test_a_buyers_api_key_is_recorded_as_the_buyer_over_the_api(buyer_client, buyer, lead):
    buyer_client.post(outcome_url(lead), {"outcome": "converted", "sale_amount": "90.00"}, format="json")

    assert reporters() == [("partner_api", buyer.pk, None, None, "converted")]
    lead.refresh_from_db()
    assert lead.status_reason == "reported by the buyer Solar Buyer"


def test_an_advertisers_postback_is_recorded_as_its_postback(client, offer, postback_token):
    lead = LeadFactory(campaign__offer=offer, click_id="clk-9")

    client.get("/postback/", {"token": postback_token, "click_id": "clk-9", "status": "sale", "payout": "42.50"})

    assert reporters() == [("advertiser_postback", None, offer.advertiser_id, None, "converted")]
    lead.refresh_from_db()
    assert lead.status_reason == f"reported by postback from {offer.advertiser}"


@pytest.mark.parametrize("auth", ["session", "token"])
def test_a_managers_sale_over_the_api_is_recorded_as_theirs_not_as_a_postback(staff_user_in, lead, auth):
    manager = staff_user_in("Managers", username="maria")
    client = APIClient()
    if auth == "session":
        client.force_login(manager)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_create(user=manager)[1]}")

    response = client.post(outcome_url(lead), {"outcome": "converted", "sale_amount": "640.00"}, format="json")

    assert response.status_code == 201, response.json()
    assert reporters() == [("staff", None, None, manager.pk, "converted")]
    lead.refresh_from_db()
    assert (lead.status, lead.status_reason) == ("won", "reported by maria")
    # On the timeline as the manager's doing, never as a postback.
    events = lead.events.filter(kind__in=[LeadEvent.Kind.STATUS, LeadEvent.Kind.OUTCOME]).order_by("id")
    assert [(event.kind, event.actor_id) for event in events] == [("status", manager.pk), ("outcome", manager.pk)]
    assert "postback" not in str(events.last().data)


def test_the_lead_page_shows_who_reported_each_outcome(client, superuser, buyer_client, buyer, lead):
    buyer_client.post(outcome_url(lead), {"outcome": "contacted"}, format="json")
    manager_client = APIClient()
    manager_client.force_login(superuser)
    manager_client.post(outcome_url(lead), {"outcome": "converted", "sale_amount": "640.00"}, format="json")
    client.force_login(superuser)

    page = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()

    section = page[page.index("Outcomes reported") :]
    assert f"<td>Staff: {superuser.username}</td>" in section
    assert "<td>Buyer over the API: Solar Buyer</td>" in section
    assert section.index(f"Staff: {superuser.username}") < section.index("Buyer over the API")  # latest first


# --- OpenAPI ----------------------------------------------------------------------------------


def test_the_schema_generates_and_validates_without_warnings(tmp_path):
    schema_file = tmp_path / "openapi.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))

    text = schema_file.read_text()
    assert "/api/v1/leads/{lead_id}/outcome/:" in text and "/api/v1/reports/:" in text and "/postback/:" in text


def test_staff_can_read_the_schema_and_the_swagger_ui_served_from_local_files(staff_client):
    schema = staff_client.get(reverse("api-schema"), {"format": "json"})
    docs = staff_client.get(reverse("api-docs"))

    assert schema.status_code == 200
    assert "/api/v1/reports/" in schema.json()["paths"]
    assert "ApiKey" in schema.json()["components"]["securitySchemes"]
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    # Everything from this site: static files, and the page's own start-up script (no inline script
    # under the Content-Security-Policy), which names nothing outside the site either.
    docs_script = reverse("api-docs") + "?script="
    assert [asset for asset in assets if not asset.startswith("/static/")] == [docs_script]
    script = staff_client.get(docs_script)
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    for text in (html, script.content.decode()):
        assert not re.search(r"https?://|cdn|unpkg|jsdelivr", text)


def test_postback_accepts_form_fields(client):
    advertiser = AdvertiserFactory(name="Form poster")
    token = advertiser_postback_token_rotate(advertiser=advertiser)
    lead = LeadFactory(campaign__offer__advertiser=advertiser, click_id="form-click")

    body = urlencode({"token": token, "click_id": "form-click", "status": "sale", "payout": "99.50"})
    response = client.post("/postback/", body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 201
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount) == ("won", Decimal("99.50"))


def test_postback_with_a_bad_token_is_refused_before_its_fields_are_checked(client):
    response = client.get("/postback/", {"token": "guess", "status": "nonsense"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["fields"] == {}


def test_postback_token_may_come_in_a_header_instead_of_the_url(client):
    advertiser = AdvertiserFactory(name="Header poster")
    token = advertiser_postback_token_rotate(advertiser=advertiser)
    lead = LeadFactory(campaign__offer__advertiser=advertiser, click_id="hdr-click")

    response = client.get(
        "/postback/", {"click_id": "hdr-click", "status": "sale", "payout": "12"}, HTTP_X_POSTBACK_TOKEN=token
    )

    assert response.status_code == 201
    lead.refresh_from_db()
    assert lead.status == "won"


def test_postbacks_from_one_address_are_rate_limited_and_other_addresses_are_not(client, offer, settings):
    settings.POSTBACK_REQUESTS_PER_MINUTE = 3
    from django.core.cache import cache

    cache.clear()
    guess = {"token": "wrong-token", "click_id": "clk-1", "status": "sale"}

    answers = [client.get("/postback/", guess, REMOTE_ADDR="198.51.100.9").status_code for _ in range(4)]
    other = client.get("/postback/", guess, REMOTE_ADDR="198.51.100.10")

    assert answers == [401, 401, 401, 429]  # token guessing is slowed down
    assert int(client.get("/postback/", guess, REMOTE_ADDR="198.51.100.9")["Retry-After"]) > 0
    assert other.status_code == 401

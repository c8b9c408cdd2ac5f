"""Inbound pings from suppliers: a price (or a refusal with its reason) for a lead's non-identifying
fields, and a lead posted with that ping's id bought at that price, once, while it holds."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import Campaign
from campaigns.tests.factories import CampaignFactory
from leads.admin.timeline import _captured
from leads.models import (
    ApiScope,
    Delivery,
    DeliveryDestination,
    DeliveryRoute,
    IdempotencyRecord,
    Lead,
    LeadEvent,
    LedgerEntry,
    OutboxEntry,
    Partner,
    SupplierPayout,
    SupplierPing,
)
from leads.services.answers import Outcome, Verdict
from leads.services.delivery import SentRequest, _record, _route
from leads.services.inbound_ping import NOT_IN_A_PING, PING_FIELDS, PingRefused, supplier_ping, supplier_pings_purge
from leads.services.intake import api_lead_submit
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

PING = "/api/v1/ping/"
LEADS = "/api/v1/leads/"
K = LedgerEntry.Kind


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()  # rate limits and the per-process configuration count in it
    yield
    cache.clear()


def key_client(partner: Partner, *, scopes=(ApiScope.LEADS_WRITE,), sandbox: bool = False) -> APIClient:
    _, raw_key = api_key_create(partner=partner, scopes=list(scopes), sandbox=sandbox)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def supplier(campaign):
    partner = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    partner.campaigns.add(campaign)
    SupplierPayout.objects.create(partner=partner, campaign=campaign, amount=Decimal("8.00"), currency="USD")
    return partner


@pytest.fixture
def client(supplier):
    return key_client(supplier)


def ping_body(campaign, **fields) -> dict:
    return {"campaign": campaign.slug, "country": "US", "action": "quote", "zip_prefix": "902", **fields}


def lead_body(campaign, ping_id, **fields) -> dict:
    return {
        "campaign": campaign.slug,
        "email": "ann.smith@example.com",
        "phone": "+1 650 555 1212",
        "first_name": "Ann",
        "country": "US",
        "action": "quote",
        "zip_code": "90210",
        "ping_id": ping_id,
        **fields,
    }


def ping(client, campaign, **fields) -> dict:
    response = client.post(PING, ping_body(campaign, **fields), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, code: str) -> str:
    """The 409 a post gets when its ping's price does not hold: the code, and the reason for ping_id."""
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert list(error["fields"]) == ["ping_id"]
    assert "Nothing was stored." in error["message"]
    return error["fields"]["ping_id"][0]


def test_a_ping_price_holds_for_its_post_even_when_the_payout_changes_meanwhile(client, supplier, campaign, settings):
    settings.INBOUND_PING_SECONDS = 45

    quote = ping(client, campaign)

    assert quote["accepted"] is True
    assert (quote["price"], quote["currency"], quote["earned_by"]) == ("8.00", "USD", "valid")
    assert (quote["refusal"], quote["reason"]) == ("", "")
    stored = SupplierPing.objects.get()
    assert str(stored.public_id) == quote["ping_id"]
    assert stored.expires_at - stored.created_at == datetime.timedelta(seconds=45)
    assert quote["expires_at"] == stored.expires_at.isoformat()

    SupplierPayout.objects.filter(partner=supplier).update(amount=Decimal("3.00"))  # after the quote
    response = client.post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")

    assert response.status_code == 201, response.content
    lead = Lead.objects.get(public_id=response.json()["id"])
    stored.refresh_from_db()
    assert stored.lead == lead
    assert [(e.kind, e.amount, e.currency) for e in LedgerEntry.objects.filter(lead=lead)] == [
        (K.PAYOUT_EARNED, Decimal("-8.00"), "USD")
    ]
    captured = lead.events.get(kind=LeadEvent.Kind.CAPTURED)
    assert captured.data["ping"] == quote["ping_id"]
    assert f"bought at the price of the supplier's ping {quote['ping_id']}" in _captured(captured.data)


def test_a_lead_posted_without_a_ping_earns_the_payout_of_the_day(client, supplier, campaign):
    ping(client, campaign)
    SupplierPayout.objects.filter(partner=supplier).update(amount=Decimal("3.00"))

    response = client.post(LEADS, lead_body(campaign, ""), format="json")

    assert response.status_code == 201
    assert LedgerEntry.objects.get(lead__public_id=response.json()["id"]).amount == Decimal("-3.00")


def test_a_ping_with_a_contact_name_address_or_ip_is_refused_and_nothing_is_kept(client, campaign):
    identifying = {
        "email": "ann@example.com",
        "phone": "+16505551212",
        "first_name": "Ann",
        "last_name": "Smith",
        "zip_code": "90210",
        "ip": "203.0.113.9",
        "colour": "blue",
    }

    response = client.post(PING, ping_body(campaign, **identifying), format="json")

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        **{name: [NOT_IN_A_PING] for name in identifying if name != "colour"},
        "colour": ["Unknown field."],
    }
    assert not SupplierPing.objects.exists()


def test_a_ping_carries_only_fields_that_identify_nobody():
    names = {spec.name for spec in PING_FIELDS}
    assert names == {"action", "country", "company_size", "budget", "answers", "consent", "zip_prefix"}


def test_a_full_zip_code_is_too_long_for_a_prefix(client, campaign):
    response = client.post(PING, ping_body(campaign, zip_prefix="90210"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"zip_prefix": ["Ensure this field has no more than 4 characters."]}


def test_a_ping_to_a_campaign_the_key_may_not_post_to_is_refused_like_the_lead_would_be(client):
    other = CampaignFactory()  # not one of this supplier's campaigns

    response = client.post(PING, {"campaign": other.slug, "country": "US"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"campaign": ["Unknown campaign, or one this key may not post to."]}
    assert not SupplierPing.objects.exists()


@pytest.mark.parametrize(
    ("setup", "fields", "code", "reason"),
    [
        ("pause", {}, "campaign_not_running", "The campaign takes no leads now (paused, ended or not started)."),
        ("no_payout", {}, "no_payout", "We pay you nothing for leads on this campaign: no payout is set up."),
        ("target_us", {"country": "DE"}, "country_not_targeted", "The campaign takes leads from US, not DE."),
        ("offer_ca", {}, "country_not_targeted", "The offer takes leads from CA, not US."),
        (
            "hard_only",
            {"action": "newsletter"},
            "lead_type_not_accepted",
            "The offer takes hard leads; this action makes a soft one.",
        ),
        ("cap_2", {}, "offer_capped", "The offer has its 2 leads for today."),
    ],
)
def test_a_ping_is_refused_with_its_reason_and_no_ping_id(client, supplier, campaign, setup, fields, code, reason):
    offer = campaign.offer
    if setup == "pause":
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    elif setup == "no_payout":
        SupplierPayout.objects.filter(partner=supplier).update(is_active=False)
    elif setup == "target_us":
        Campaign.objects.filter(pk=campaign.pk).update(target_countries=["US"])
    elif setup == "offer_ca":
        offer.accepted_countries = ["CA"]
        offer.save()
    elif setup == "hard_only":
        offer.accepted_lead_types = ["hard"]
        offer.save()
    elif setup == "cap_2":
        offer.daily_lead_cap = 2
        offer.save()
        LeadFactory.create_batch(2, campaign=campaign)
        LeadFactory(campaign=campaign, is_duplicate=True)  # not counted: it is not billable
    cache.clear()  # the campaign as each process reads it again after staff change it

    quote = ping(client, campaign, **fields)

    assert (quote["accepted"], quote["ping_id"], quote["price"], quote["expires_at"]) == (False, None, None, None)
    assert (quote["refusal"], quote["reason"]) == (code, reason)
    stored = SupplierPing.objects.get()
    post = client.post(LEADS, lead_body(campaign, str(stored.public_id), **fields), format="json")
    assert refused(post, "ping_refused") == f"The ping was refused ({reason}), so it has no price."
    assert not Lead.objects.filter(campaign=campaign, email="ann.smith@example.com").exists()


def test_a_ping_under_the_cap_is_priced(client, campaign):
    campaign.offer.daily_lead_cap = 2
    campaign.offer.save()
    LeadFactory(campaign=campaign)
    LeadFactory(campaign=campaign, created_at=timezone.now() - datetime.timedelta(days=1))
    cache.clear()

    assert ping(client, campaign)["accepted"] is True


def test_an_expired_ping_id_is_refused_and_nothing_is_stored(client, campaign):
    quote = ping(client, campaign)
    # Let its time pass (moving the row, not the clock).
    SupplierPing.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = client.post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")

    assert refused(response, "ping_expired").startswith("The ping expired at ")
    assert not Lead.objects.exists() and not LedgerEntry.objects.exists()
    assert SupplierPing.objects.get().lead is None


def test_a_ping_id_used_twice_is_refused_the_second_time_naming_the_first_lead(client, campaign):
    quote = ping(client, campaign)
    first = client.post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")
    assert first.status_code == 201

    again = client.post(LEADS, lead_body(campaign, quote["ping_id"], email="bob@example.com"), format="json")

    assert refused(again, "ping_used") == f"The ping was used already, by lead {first.json()['id']}."
    assert Lead.objects.count() == 1 and LedgerEntry.objects.count() == 1


def test_a_repeat_with_the_same_idempotency_key_replays_the_first_answer_not_a_refusal(client, campaign):
    quote = ping(client, campaign)
    body = lead_body(campaign, quote["ping_id"])

    first = client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")
    again = client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Lead.objects.count() == 1


def test_a_repeat_whose_stored_answer_is_gone_gets_its_lead_back_not_a_refusal_that_says_nothing_was_stored(
    client, campaign
):
    quote = ping(client, campaign)
    body = lead_body(campaign, quote["ping_id"])
    first = client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")
    IdempotencyRecord.objects.all().delete()  # its answer lost as the process died, or forgotten after a day

    again = client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Lead.objects.count() == 1 and LedgerEntry.objects.count() == 1
    # Another key with the used ping is still refused.
    assert refused(client.post(LEADS, body, format="json", HTTP_IDEMPOTENCY_KEY="lead-2"), "ping_used")


def test_another_suppliers_ping_id_is_unknown_to_this_one(client, campaign):
    quote = ping(client, campaign)
    other = Partner.objects.create(name="Other affiliate", role=Partner.Role.SUPPLIER)
    other.campaigns.add(campaign)

    response = key_client(other).post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")

    assert refused(response, "ping_unknown") == "No ping of this supplier has this id."
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"country": "CA"}, "The lead's country (CA) is not the pinged one (US)."),
        ({"action": "newsletter"}, "The lead is a soft lead; the ping was for a hard one."),
    ],
)
def test_a_lead_whose_price_deciding_fields_differ_from_the_ping_is_refused(client, campaign, fields, reason):
    quote = ping(client, campaign)

    response = client.post(LEADS, lead_body(campaign, quote["ping_id"], **fields), format="json")

    assert refused(response, "ping_mismatch") == reason
    assert not Lead.objects.exists()


def test_fields_that_do_not_change_the_price_may_differ_from_the_ping(client, campaign):
    quote = ping(client, campaign, answers={"roof": "tile"}, budget="5000")

    response = client.post(
        LEADS,
        lead_body(campaign, quote["ping_id"], action="demo", zip_code="10001", answers={"roof": "metal"}),
        format="json",
    )

    assert response.status_code == 201  # demo and quote are both hard leads; zip and answers do not price


def test_a_sandbox_ping_does_not_buy_a_live_lead(supplier, campaign):
    quote = ping(key_client(supplier, sandbox=True), campaign)

    response = key_client(supplier).post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")

    assert refused(response, "ping_mismatch").startswith("The ping was made with a sandbox key")


def test_a_malformed_ping_id_is_a_field_error(client, campaign):
    response = client.post(LEADS, lead_body(campaign, "not-a-ping"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"ping_id": ["Not an id we gave out (a UUID)."]}
    assert not Lead.objects.exists()


def test_pings_are_a_suppliers_and_need_the_lead_posting_scope(supplier, campaign, staff_client):
    assert staff_client.post(PING, ping_body(campaign), format="json").status_code == 403
    reader = key_client(supplier, scopes=(ApiScope.LEADS_READ,))
    assert reader.post(PING, ping_body(campaign), format="json").status_code == 403
    assert APIClient().post(PING, ping_body(campaign), format="json").status_code == 401
    assert not SupplierPing.objects.exists()


def test_a_ping_bought_lead_earned_on_sale_books_the_pinged_price_when_sold(client, supplier, campaign):
    SupplierPayout.objects.filter(partner=supplier).update(basis="sold")
    cache.clear()
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Inbox", kind="email", email_to=["sales@buyer.example"]
    )
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination, price_per_lead=Decimal("25.00"))
    quote = ping(client, campaign)
    assert quote["earned_by"] == "sold"
    lead = Lead.objects.get(
        public_id=client.post(LEADS, lead_body(campaign, quote["ping_id"]), format="json").json()["id"]
    )
    SupplierPayout.objects.filter(partner=supplier).update(amount=Decimal("1.00"))
    cache.clear()
    assert not LedgerEntry.objects.filter(lead=lead).exists()  # earned only once sold

    delivery = _route(OutboxEntry.objects.get(lead=lead, kind=OutboxEntry.Kind.DELIVERY))
    _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)))

    assert Delivery.objects.get(lead=lead).status == "accepted"
    assert sorted((e.kind, e.amount) for e in LedgerEntry.objects.filter(lead=lead)) == [
        (K.LEAD_SOLD, Decimal("25.00")),
        (K.PAYOUT_EARNED, Decimal("-8.00")),
    ]


def test_the_schema_documents_the_ping_and_the_posts_ping_refusals(staff_client):
    schema = staff_client.get(reverse("api-schema"), {"format": "json"}).json()

    ping_post = schema["paths"]["/api/v1/ping/"]["post"]
    assert {"200", "400", "401", "403", "429"} <= set(ping_post["responses"])
    assert "ping_expired" in ping_post["responses"]["200"]["description"]
    request = ping_post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][request]["properties"]) == {"campaign", *(s.name for s in PING_FIELDS)}
    lead_post = schema["paths"]["/api/v1/leads/"]["post"]
    assert "ping_used" in lead_post["responses"]["409"]["description"]
    lead_request = lead_post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "ping_id" in schema["components"]["schemas"][lead_request]["properties"]


def test_a_batch_item_whose_ping_does_not_hold_is_rejected_with_the_pings_code_and_the_others_go_in(client, campaign):
    quote = ping(client, campaign)
    SupplierPing.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = client.post(
        "/api/v1/leads/batch/",
        {"leads": [lead_body(campaign, quote["ping_id"]), lead_body(campaign, "", email="bob@example.com")]},
        format="json",
    )

    body = response.json()
    assert (body["created"], body["rejected"]) == (1, 1)
    assert body["results"][0]["error"]["code"] == "ping_expired"
    assert list(Lead.objects.values_list("email", flat=True)) == ["bob@example.com"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_posts_racing_with_one_ping_id_make_one_lead_and_the_rest_are_refused():
    campaign = CampaignFactory()
    supplier = Partner.objects.create(name="Racer", role=Partner.Role.SUPPLIER)
    supplier.campaigns.add(campaign)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("8.00"))
    quote = supplier_ping(data=ping_body(campaign), partner=supplier)
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def post(number: int) -> None:
        try:
            data = lead_body(campaign, str(quote.public_id), email=f"racer{number}@example.com")
            barrier.wait(timeout=10)
            api_lead_submit(data=data, partner=supplier)
            outcomes.append("bought")
        except PingRefused as error:
            outcomes.append(error.code)
        except Exception as error:  # reported below; a thread cannot fail the test itself
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(number,)) for number in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["bought", *["ping_used"] * (racers - 1)]
    assert Lead.objects.count() == 1
    assert LedgerEntry.objects.get().amount == Decimal("-8.00")
    quote.refresh_from_db()
    assert quote.lead == Lead.objects.get()


def test_unused_pings_are_forgotten_a_week_after_they_expired_and_used_ones_stay_with_their_lead(client, campaign):
    from django_celery_beat.models import PeriodicTask

    old_unused, old_used, recent = (
        SupplierPing.objects.get(public_id=ping(client, campaign)["ping_id"]) for _ in "abc"
    )
    lead = Lead.objects.get(
        public_id=client.post(LEADS, lead_body(campaign, str(old_used.public_id)), format="json").json()["id"]
    )
    long_ago = timezone.now() - datetime.timedelta(days=8)
    SupplierPing.objects.filter(pk__in=[old_unused.pk, old_used.pk]).update(expires_at=long_ago)

    assert supplier_pings_purge(batch=1) == 1

    assert set(SupplierPing.objects.values_list("pk", flat=True)) == {old_used.pk, recent.pk}
    assert SupplierPing.objects.get(pk=old_used.pk).lead == lead
    assert PeriodicTask.objects.get(task="leads.tasks.purge_supplier_pings_task").interval.every == 1


def test_a_pinged_lead_we_already_had_is_stored_as_a_duplicate_uses_its_ping_and_earns_nothing(client, campaign):
    first = client.post(LEADS, lead_body(campaign, ""), format="json").json()
    quote = ping(client, campaign)

    response = client.post(LEADS, lead_body(campaign, quote["ping_id"]), format="json")

    assert response.status_code == 201
    assert (response.json()["duplicate"], response.json()["duplicate_of"]) == (True, first["id"])
    lead = Lead.objects.get(public_id=response.json()["id"])
    assert not LedgerEntry.objects.filter(lead=lead).exists()
    assert SupplierPing.objects.get().lead == lead

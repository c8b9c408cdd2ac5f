"""The delivery admin as marketing staff and managers use it."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape
from standardwebhooks.webhooks import Webhook

from campaigns.tests.factories import AdvertiserFactory, CampaignFactory
from leads.models import Delivery, DeliveryDestination, DeliveryRoute, OutboxEntry, WebhookSecret
from leads.services.signing import destination_rotate_secret
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client, staff_user_in):
    client.force_login(staff_user_in("Managers"))
    return client


@pytest.fixture
def buyer(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    campaign = CampaignFactory()
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Acme CRM", url=httpserver.url_for("/in")
    )
    route = DeliveryRoute.objects.create(offer=campaign.offer, destination=destination, daily_cap=10, hourly_cap=3)
    destination_rotate_secret(destination=destination)  # deliveries are always signed
    return destination, route, campaign


def test_a_new_signing_secret_is_shown_once_and_stored_encrypted(manager, buyer):
    destination, _, _ = buyer
    change = reverse("admin:leads_deliverydestination_change", args=[destination.pk])

    response = manager.post(reverse("admin:leads_destination_rotate", args=[destination.pk]))

    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret.encode() in response.content
    assert "no-store" in response["Cache-Control"]
    stored = WebhookSecret.objects.filter(destination=destination).latest("created_at")
    assert secret not in stored.secret_encrypted
    page = manager.get(change)
    assert secret.encode() not in page.content
    assert stored.prefix.encode() in page.content


def test_send_test_lead_shows_the_request_and_the_buyers_answer(manager, buyer, httpserver):
    destination, _, _ = buyer
    manager.post(reverse("admin:leads_destination_rotate", args=[destination.pk]))
    httpserver.expect_oneshot_request("/in", method="POST").respond_with_json({"status": "ok"}, status=201)

    response = manager.post(reverse("admin:leads_destination_test", args=[destination.pk]))

    assert response.status_code == 200
    assert b"HTTP 201" in response.content and b"accepted" in response.content
    assert b"test.lead@example.com" in response.content
    request, _ = httpserver.log[0]
    assert request.headers["webhook-id"].startswith("msg_test_")
    assert "webhook-signature" in request.headers
    assert Delivery.objects.count() == 0  # a test is not a delivery


def test_the_auth_secret_is_write_only(manager, buyer, httpserver):
    destination, _, _ = buyer
    change = reverse("admin:leads_deliverydestination_change", args=[destination.pk])
    page = manager.get(change)
    data = {
        **{k: v for k, v in page.context["adminform"].form.initial.items() if v is not None},
        "advertiser": destination.advertiser_id,
        "name": destination.name,
        "kind": "json",
        "url": destination.url,
        "field_mapping": "{}",
        "headers": "{}",
        "timeout_seconds": "10",
        "auth": "bearer",
        "auth_username": "",
        "new_auth_secret": "tok-123-very-secret",
        "email_to": "",
        "is_active": "on",
        "routes-TOTAL_FORMS": "0",
        "routes-INITIAL_FORMS": "0",
        "secrets-TOTAL_FORMS": "0",
        "secrets-INITIAL_FORMS": "0",
    }
    response = manager.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    destination.refresh_from_db()
    assert destination.auth_secret_encrypted and "tok-123" not in destination.auth_secret_encrypted
    assert b"tok-123-very-secret" not in manager.get(change).content

    httpserver.expect_oneshot_request("/in", headers={"Authorization": "Bearer tok-123-very-secret"}).respond_with_data(
        "ok"
    )
    manager.post(reverse("admin:leads_destination_test", args=[destination.pk]))
    httpserver.check_assertions()


def test_a_new_http_destination_shows_its_first_signing_secret_once(manager, buyer):
    destination, _, _ = buyer
    response = manager.post(
        reverse("admin:leads_deliverydestination_add"),
        {
            "advertiser": destination.advertiser_id,
            "name": "Second CRM",
            "kind": "json",
            "url": "https://buyer.example/in",
            "field_mapping": "{}",
            "headers": "{}",
            "timeout_seconds": "10",
            "auth": "none",
            "is_active": "on",
            "routes-TOTAL_FORMS": "0",
            "routes-INITIAL_FORMS": "0",
            "secrets-TOTAL_FORMS": "0",
            "secrets-INITIAL_FORMS": "0",
        },
    )

    created = DeliveryDestination.objects.get(name="Second CRM")
    assert response.status_code == 200 and response.context["secret"].startswith("whsec_")
    assert created.secrets.filter(revoked_at__isnull=True).count() == 1


def test_mapping_errors_are_shown_on_the_form(manager, buyer):
    destination, _, _ = buyer
    response = manager.post(
        reverse("admin:leads_deliverydestination_add"),
        {
            "advertiser": destination.advertiser_id,
            "name": "Broken",
            "kind": "json",
            "url": "https://buyer.example/in",
            "field_mapping": '{"tel": {"field": "telephone"}, "mail": {"field": "email", "format": "national"}}',
            "headers": '{"Authorization": "x"}',
            "timeout_seconds": "10",
            "auth": "none",
            "routes-TOTAL_FORMS": "0",
            "routes-INITIAL_FORMS": "0",
            "secrets-TOTAL_FORMS": "0",
            "secrets-INITIAL_FORMS": "0",
        },
    )
    errors = response.context["adminform"].form.errors
    assert "unknown field 'telephone'" in errors["field_mapping"][0]
    assert "phone formats apply to the phone field only" in errors["field_mapping"][0]
    assert "Authorization" in errors["headers"][0]
    assert not DeliveryDestination.objects.filter(name="Broken").exists()


def _get_counting_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def _usage_cells(html: str, column: str) -> list[str]:
    """The text of a column's cells, row by row, as the list shows them."""
    return re.findall(rf'<td class="field-{column}[ "][^>]*>([^<]*)</td>', html)


def test_routes_list_shows_todays_counts_against_caps_in_the_same_queries_for_one_route_or_thirty(manager, buyer):
    destination, route, campaign = buyer
    for _ in range(2):
        Delivery.objects.create(
            lead=LeadFactory(campaign=campaign), destination=destination, route=route, status="accepted"
        )
    Delivery.objects.create(
        lead=LeadFactory(campaign=campaign), destination=destination, route=route, status="rejected"
    )  # a rejection does not use the cap
    url = reverse("admin:leads_deliveryroute_changelist")

    one_route, one_route_queries = _get_counting_queries(manager, url)
    for number in range(29):  # the offer sold to 29 more buyers, each with a delivery today
        other_destination = DeliveryDestination.objects.create(
            advertiser=AdvertiserFactory(), name=f"Buyer {number}", url=destination.url
        )
        other_route = DeliveryRoute.objects.create(
            offer=campaign.offer, destination=other_destination, daily_cap=20, hourly_cap=5
        )
        Delivery.objects.create(
            lead=LeadFactory(campaign=campaign), destination=other_destination, route=other_route, status="accepted"
        )
    thirty_routes, thirty_routes_queries = _get_counting_queries(manager, url)

    # Session, user, permissions (2), the page count, the routes with their counts, the filters' lists.
    assert one_route_queries == thirty_routes_queries <= 12
    assert (_usage_cells(one_route, "hour_usage"), _usage_cells(one_route, "day_usage")) == (["2 / 3"], ["2 / 10"])
    assert sorted(_usage_cells(thirty_routes, "hour_usage")) == ["1 / 5"] * 29 + ["2 / 3"]
    assert sorted(_usage_cells(thirty_routes, "day_usage")) == ["1 / 20"] * 29 + ["2 / 10"]
    assert "Acme CRM" in thirty_routes and "Buyer 0" in thirty_routes and "Buyer 28" in thirty_routes


def test_routes_list_costs_the_same_queries_with_one_offer_or_thirty(manager, buyer):
    """The Offer filter names each offer with its advertiser, loaded with it (the stock filter took a
    query per offer: 10 queries grew to 39)."""
    url = reverse("admin:leads_deliveryroute_changelist")

    _, one_offer_queries = _get_counting_queries(manager, url)
    newest = CampaignFactory.create_batch(29)[-1].offer  # 29 more offers, each of its own advertiser
    thirty_offers, thirty_offers_queries = _get_counting_queries(manager, url)

    assert "Acme CRM" in thirty_offers and escape(str(newest)) in thirty_offers
    assert one_offer_queries == thirty_offers_queries <= 12


def test_deliveries_list_filters_and_redelivers(manager, buyer, httpserver, django_capture_on_commit_callbacks):
    destination, route, campaign = buyer
    failed = Delivery.objects.create(
        lead=LeadFactory(campaign=campaign), destination=destination, route=route, status="failed", reason="HTTP 404"
    )
    Delivery.objects.create(
        lead=LeadFactory(campaign=campaign), destination=destination, route=route, status="accepted"
    )
    changelist = reverse("admin:leads_delivery_changelist")

    listed = manager.get(changelist, {"status__exact": "failed"})
    assert [d.pk for d in listed.context["cl"].result_list] == [failed.pk]

    httpserver.expect_oneshot_request("/in").respond_with_json({"ok": True})
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(changelist, {"action": "redeliver", "_selected_action": [failed.pk]})

    failed.refresh_from_db()
    assert failed.status == "accepted"
    request, _ = httpserver.log[0]
    assert request.headers["webhook-id"] == failed.webhook_id


def test_held_leads_are_listed_with_why_they_wait(manager, buyer):
    _, _, campaign = buyer
    lead = LeadFactory(campaign=campaign)
    OutboxEntry.objects.create(lead=lead, kind="delivery", payload={"held": "every buyer is at its cap"})
    OutboxEntry.objects.create(lead=lead, kind="delivery", payload={"delivery": 1})

    response = manager.get(reverse("admin:leads_helddelivery_changelist"))

    assert [e.lead_id for e in response.context["cl"].result_list] == [lead.pk]
    assert b"every buyer is at its cap" in response.content


def test_the_lead_page_shows_its_deliveries_and_postbacks(manager, buyer):
    destination, route, campaign = buyer
    lead = LeadFactory(campaign=campaign)
    delivery = Delivery.objects.create(
        lead=lead, destination=destination, route=route, status="rejected", reason="dupe"
    )

    page = manager.get(reverse("admin:leads_lead_change", args=[lead.pk]))

    money = page.content.decode()
    money = money[money.index("Deliveries to buyers") :]
    assert destination.name in money and "Rejected" in money and "dupe" in money
    assert reverse("admin:leads_delivery_change", args=[delivery.pk]) in money
    assert "Postbacks to the traffic source" in money and "No postback was due." in money


def test_marketing_can_read_deliveries_but_not_change_destinations(client, staff_user_in, buyer):
    destination, _, _ = buyer
    client.force_login(staff_user_in("Marketing"))
    assert client.get(reverse("admin:leads_delivery_changelist")).status_code == 200
    assert client.post(reverse("admin:leads_destination_rotate", args=[destination.pk])).status_code == 302
    assert WebhookSecret.objects.count() == 1  # only the fixture's


def test_verifying_with_the_shown_secret_works(manager, buyer, httpserver):
    destination, _, _ = buyer
    secret = manager.post(reverse("admin:leads_destination_rotate", args=[destination.pk])).context["secret"]
    httpserver.expect_oneshot_request("/in").respond_with_data("ok")
    manager.post(reverse("admin:leads_destination_test", args=[destination.pk]))
    request, _ = httpserver.log[0]
    verified = Webhook(secret).verify(request.get_data(), dict(request.headers))  # raises if the signature is wrong
    assert verified == json.loads(request.get_data())
    assert request.headers["webhook-id"].startswith("msg_")


def test_marketing_does_not_see_buyer_credentials_in_headers_or_the_url_query(client, staff_user_in, buyer):
    destination, _, _ = buyer
    DeliveryDestination.objects.filter(pk=destination.pk).update(
        url=destination.url + "?token=SECRETQS",
        headers={"X-Api-Key": "SECRETHDR"},
        field_mapping={"mail": "email", "api_key": {"value": "SECRETBODY"}},
    )
    client.force_login(staff_user_in("Marketing"))

    page = client.get(reverse("admin:leads_deliverydestination_change", args=[destination.pk]))
    listing = client.get(reverse("admin:leads_deliverydestination_changelist"))

    assert page.status_code == listing.status_code == 200
    for response in (page, listing):
        for secret in (b"SECRETQS", b"SECRETHDR", b"SECRETBODY"):
            assert secret not in response.content
    assert destination.name.encode() in page.content
    # The mapping shows, its constant (a key sent in the body) as a placeholder.
    assert "{&quot;mail&quot;: &quot;email&quot;, &quot;api_key&quot;: {&quot;value&quot;: &quot;…&quot;}}" in (
        page.content.decode()
    )


def test_marketing_cannot_read_buyer_credentials_back_through_searches_or_filters(client, staff_user_in, buyer):
    destination, _, _ = buyer
    DeliveryDestination.objects.filter(pk=destination.pk).update(
        url=destination.url + "?token=SECRETQS",
        headers={"X-Api-Key": "SECRETHDR"},
        auth_username="acme-user",
        field_mapping={"api_key": {"value": "SECRETBODY"}},
    )
    listing = reverse("admin:leads_deliverydestination_changelist")

    def listed(user, query) -> bool:
        client.force_login(user)
        response = client.get(listing, query)
        # Django refuses a lookup it does not allow (400), listing nothing.
        return response.status_code == 200 and destination.name.encode() in response.content

    guesses = [
        {"q": "token=SECRETQ"},
        {"headers__X-Api-Key__startswith": "SECRETH"},
        {"url__contains": "SECRETQ"},
        {"auth_username__startswith": "acme"},
        {"ping_url__isnull": "False"},
        {"field_mapping__api_key__value__startswith": "SECRETB"},
    ]
    marketing, manager = staff_user_in("Marketing"), staff_user_in("Managers")
    assert [listed(marketing, guess) for guess in guesses] == [False] * len(guesses)
    # Those who may change destinations see these fields anyway, and may still search and filter by them.
    assert [listed(manager, guess) for guess in guesses] == [True] * len(guesses)
    assert listed(marketing, {"q": destination.name}) and not listed(
        manager, {"auth_secret_encrypted__isnull": "False"}
    )

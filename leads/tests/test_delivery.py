"""Delivery to buyers against a real local HTTP server playing the buyer."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from leads.models import Delivery, DeliveryDestination, DeliveryRoute
from leads.services.signing import destination_rotate_secret


@pytest.fixture
def buyer_host(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]  # the local buyer; everything else is checked
    return httpserver


@pytest.fixture
def destination(campaign, buyer_host):
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Acme CRM", url=buyer_host.url_for("/leads")
    )
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    return destination


def test_a_valid_lead_is_posted_to_the_buyer_signed_and_accepted(
    capture, destination, buyer_host, django_capture_on_commit_callbacks
):
    secret = destination_rotate_secret(destination=destination)
    buyer_host.expect_oneshot_request("/leads", method="POST").respond_with_json({"id": "B-1"})
    destination.reference_json_path = "id"
    destination.save()

    with django_capture_on_commit_callbacks(execute=True):
        lead = capture(email="jo@example.com", first_name="Jo", phone="+1 650 555 1212", country="US")

    buyer_host.check_assertions()
    request, _ = buyer_host.log[0]
    body = request.get_data()
    assert json.loads(body)["email"] == "jo@example.com"
    verified = Webhook(secret).verify(body, dict(request.headers))  # an independent implementation
    assert verified["id"] == str(lead.public_id)
    delivery = Delivery.objects.get(lead=lead)
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert (delivery.status, delivery.attempts, delivery.buyer_reference) == ("accepted", 1, "B-1")
    assert delivery.attempt_log.get().status_code == 200
    assert lead.outbox_entries.get(kind="delivery").status == "done"

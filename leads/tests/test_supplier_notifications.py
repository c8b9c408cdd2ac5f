"""Returns are reported back to the supplier that sent the lead, by a signed webhook."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from campaigns.tests.factories import OfferFactory
from leads.models import ApiScope, OutboxEntry, Partner, PartnerNotification
from leads.services.outbox import outbox_process
from leads.services.partners import api_key_create
from leads.services.signing import partner_rotate_webhook_secret
from leads.tests.factories import LeadFactory, delivered

pytestmark = pytest.mark.django_db


@pytest.fixture
def supplier_server(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    return httpserver


@pytest.fixture
def offer():
    return OfferFactory(return_window_days=7)


@pytest.fixture
def supplier(supplier_server):
    supplier = Partner.objects.create(
        name="Affiliate One", role=Partner.Role.SUPPLIER, webhook_url=supplier_server.url_for("/events")
    )
    partner_rotate_webhook_secret(partner=supplier)
    return supplier


@pytest.fixture
def buyer_client(offer):
    buyer = Partner.objects.create(name="Buyer", role=Partner.Role.BUYER, advertiser=offer.advertiser)
    _, raw_key = api_key_create(partner=buyer, scopes=[ApiScope.OUTCOMES_WRITE])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def supplied_lead(offer, supplier):
    lead = LeadFactory(campaign__offer=offer, partner=supplier, created_at=timezone.now() - timedelta(days=1))
    delivered(lead)
    return lead


def return_lead(client, lead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("api-lead-outcome", args=[lead.public_id]),
            {"outcome": "returned", "reason": "invalid_contact", "note": "number not in service"},
            format="json",
        )
    assert response.status_code == 201, response.json()


def test_a_return_is_posted_to_the_supplier_signed_with_the_lead_and_reason(
    supplier, supplier_server, offer, buyer_client, django_capture_on_commit_callbacks
):
    secret = partner_rotate_webhook_secret(partner=supplier)
    supplier_server.expect_oneshot_request("/events", method="POST").respond_with_data("ok")
    lead = supplied_lead(offer, supplier)

    return_lead(buyer_client, lead, django_capture_on_commit_callbacks)

    supplier_server.check_assertions()
    request, _ = supplier_server.log[0]
    event = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert event["type"] == "lead.returned"
    assert event["data"]["id"] == str(lead.public_id)
    assert event["data"]["reason"] == "invalid_contact: number not in service"
    notification = PartnerNotification.objects.get()
    assert request.headers["webhook-id"] == notification.webhook_id
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.attempt_log.get().status_code == 200


def test_a_supplier_without_a_webhook_gets_no_notification_but_sees_the_return_in_the_api(
    offer, buyer_client, django_capture_on_commit_callbacks
):
    quiet = Partner.objects.create(name="Quiet supplier", role=Partner.Role.SUPPLIER)
    lead = supplied_lead(offer, quiet)

    return_lead(buyer_client, lead, django_capture_on_commit_callbacks)

    assert not PartnerNotification.objects.exists()
    lead.refresh_from_db()
    assert lead.status == "returned"


def test_a_supplier_server_error_is_retried_under_the_same_webhook_id(
    supplier, supplier_server, offer, buyer_client, django_capture_on_commit_callbacks
):
    supplier_server.expect_ordered_request("/events").respond_with_data("down", status=503)
    supplier_server.expect_ordered_request("/events").respond_with_data("ok")
    lead = supplied_lead(offer, supplier)

    return_lead(buyer_client, lead, django_capture_on_commit_callbacks)

    notification = PartnerNotification.objects.get()
    assert notification.status == "pending"
    entry = OutboxEntry.objects.get(kind="partner_notification")
    assert "HTTP 503" in entry.last_error
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())
    assert outbox_process(entry_id=entry.pk) == "done"

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    first, second = (request for request, _ in supplier_server.log)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == notification.webhook_id
    assert json.loads(first.get_data()) == json.loads(second.get_data())


def test_events_are_never_sent_unsigned(
    supplier, supplier_server, offer, buyer_client, django_capture_on_commit_callbacks
):
    supplier.webhook_secrets.update(revoked_at=timezone.now())
    lead = supplied_lead(offer, supplier)

    return_lead(buyer_client, lead, django_capture_on_commit_callbacks)

    notification = PartnerNotification.objects.get()
    assert notification.status == "failed" and "no webhook signing secret" in notification.reason
    assert supplier_server.log == []


def test_the_admin_shows_a_new_webhook_secret_once(client, superuser, supplier):
    client.force_login(superuser)
    supplier.webhook_secrets.all().delete()

    response = client.post(
        reverse("admin:leads_partner_changelist"), {"action": "new_webhook_secret", "_selected_action": [supplier.pk]}
    )

    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret.encode() in response.content
    page = client.get(reverse("admin:leads_partner_change", args=[supplier.pk]))
    assert secret.encode() not in page.content
    assert supplier.webhook_secrets.get().prefix.encode() in page.content

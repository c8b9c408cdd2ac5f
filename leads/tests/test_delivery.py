"""Delivery to buyers against a real local HTTP server playing the buyer."""

import base64
import itertools
import json
import random
import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Response

from leads.models import BuyerAccount, Delivery, DeliveryDestination, DeliveryRoute, Lead, OutboxEntry
from leads.services import outbox_process
from leads.services.accounts import buyer_account_save
from leads.services.answers import EXCERPT_CHARS, RETRY_DELAYS
from leads.services.delivery import (
    choose_route,
    deliveries_redeliver,
    deliveries_release_held,
    deliveries_route_next,
    destination_set_auth_secret,
    held_deliveries,
)
from leads.services.ledger import buyer_balance, ledger_record_payment
from leads.services.signing import destination_retire_old_secrets, destination_rotate_secret
from leads.services.workflow import lead_set_status


@pytest.fixture
def buyer_host(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]  # the local buyer; everything else is checked
    return httpserver


@pytest.fixture
def destination(campaign, buyer_host):
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Acme CRM", url=buyer_host.url_for("/leads")
    )
    destination_rotate_secret(destination=destination)  # deliveries are always signed
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    return destination


@pytest.fixture
def deliver(capture, django_capture_on_commit_callbacks):
    """Capture a valid lead and run its follow-ups (the delivery among them) as a real commit would."""
    numbers = itertools.count(1)

    def run(**fields):
        number = next(numbers)
        fields.setdefault("email", f"person{number}@example.com")
        fields.setdefault("first_name", "Jo")
        fields.setdefault("country", "US")
        with django_capture_on_commit_callbacks(execute=True):
            return capture(**fields)

    return run


def add_buyer(campaign, server, path, *, route=None, **destination_fields) -> DeliveryDestination:
    """Another buyer of the campaign's offer, listening on its own path of the local server."""
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser,
        name=destination_fields.pop("name", f"Buyer at {path}"),
        url=server.url_for(path),
        **destination_fields,
    )
    destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination, **(route or {}))
    return destination


def delivery_entry(lead: Lead) -> OutboxEntry:
    return lead.outbox_entries.get(kind=OutboxEntry.Kind.DELIVERY)


def run_when_due(entry: OutboxEntry) -> str:
    """Let the retry's time come (moving the row, not the clock) and run it as the worker would."""
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    return outbox_process(entry_id=entry.pk)


def seconds_until(moment) -> float:
    return (moment - timezone.now()).total_seconds()


def requests_to(server, path: str) -> list:
    return [request for request, _ in server.log if request.path == path]


def attempts_of(delivery: Delivery) -> list[tuple]:
    return list(delivery.attempt_log.order_by("started_at", "id").values_list("status_code", "outcome"))


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


# --- 1. Signing ----------------------------------------------------------------------------------


def test_during_a_rotation_both_active_secrets_sign_and_either_verifies(destination, buyer_host, deliver):
    old = destination_rotate_secret(destination=destination)
    new = destination_rotate_secret(destination=destination)
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    lead = deliver()

    request, _ = buyer_host.log[0]
    body, headers = request.get_data(), dict(request.headers)
    assert len(headers["Webhook-Signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers)["email"] == lead.email
    assert Webhook(new).verify(body, headers)["email"] == lead.email


def test_after_a_second_rotation_the_oldest_secret_no_longer_verifies(destination, buyer_host, deliver):
    oldest = destination_rotate_secret(destination=destination)
    previous = destination_rotate_secret(destination=destination)
    newest = destination_rotate_secret(destination=destination)
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver()

    request, _ = buyer_host.log[0]
    body, headers = request.get_data(), dict(request.headers)
    assert len(headers["Webhook-Signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        Webhook(oldest).verify(body, headers)
    Webhook(previous).verify(body, headers)
    Webhook(newest).verify(body, headers)


def test_a_worker_that_keeps_the_secrets_signs_with_each_rotation_and_retirement_at_once(
    destination, buyer_host, deliver
):
    """A worker keeps a destination's secrets between batches (leadcrm.config_cache): a new secret, or
    an old one retired, counts from the next delivery on."""
    first = destination_rotate_secret(destination=destination)
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})
    deliver()
    second = destination_rotate_secret(destination=destination)
    deliver()
    destination_retire_old_secrets(destination=destination)
    deliver()

    signatures = [request.headers["Webhook-Signature"].split(" ") for request, _ in buyer_host.log]
    assert [len(each) for each in signatures] == [2, 2, 1]
    after_rotation, after_retirement = buyer_host.log[1][0], buyer_host.log[2][0]
    Webhook(second).verify(after_rotation.get_data(), dict(after_rotation.headers))
    Webhook(first).verify(after_rotation.get_data(), dict(after_rotation.headers))
    Webhook(second).verify(after_retirement.get_data(), dict(after_retirement.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(first).verify(after_retirement.get_data(), dict(after_retirement.headers))


def test_a_retry_is_sent_under_the_same_webhook_id_and_signed_again(destination, buyer_host, deliver):
    secret = destination_rotate_secret(destination=destination)
    buyer_host.expect_ordered_request("/leads").respond_with_data("busy", status=503)
    buyer_host.expect_ordered_request("/leads").respond_with_json({"ok": True})
    lead = deliver()

    assert run_when_due(delivery_entry(lead)) == "done"

    (first, _), (second, _) = buyer_host.log
    delivery = Delivery.objects.get(lead=lead)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
    for request in (first, second):
        Webhook(secret).verify(request.get_data(), dict(request.headers))


# --- 2. What the buyer receives -----------------------------------------------------------------


def test_the_field_mapping_sends_their_field_names_constants_and_formats(destination, buyer_host, deliver):
    destination.field_mapping = {
        "email_address": "email",
        "tel": {"field": "phone", "format": "national"},
        "tel_digits": {"field": "phone", "format": "e164_digits"},
        "given_name": {"field": "first_name", "format": "lower"},
        "source": {"value": "acme-solar"},
    }
    destination.save()
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver(email="jo@example.com", first_name="Jo", phone="+1 650 555 1212")

    request, _ = buyer_host.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "email_address": "jo@example.com",
        "tel": "(650) 555-1212",
        "tel_digits": "16505551212",
        "given_name": "jo",
        "source": "acme-solar",
    }


def test_a_form_destination_receives_form_fields_signed_like_json(destination, buyer_host, deliver):
    secret = destination_rotate_secret(destination=destination)
    destination.kind = DeliveryDestination.Kind.FORM
    destination.field_mapping = {"email": "email", "tel": {"field": "phone", "format": "e164"}, "budget": "budget"}
    destination.save()
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    lead = deliver(email="jo@example.com", phone="+1 650 555 1212")

    request, _ = buyer_host.log[0]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form.to_dict() == {"email": "jo@example.com", "tel": "+16505551212", "budget": ""}
    Webhook(secret).verify(request.get_data(), dict(request.headers), json_parse=False)
    assert Delivery.objects.get(lead=lead).status == "accepted"


def test_the_destinations_extra_headers_arrive(destination, buyer_host, deliver):
    destination.headers = {"X-Api-Version": "2024-06", "X-Partner": "leadcrm"}
    destination.save()
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver()

    request, _ = buyer_host.log[0]
    assert (request.headers["X-Api-Version"], request.headers["X-Partner"]) == ("2024-06", "leadcrm")


def test_basic_auth_arrives_and_the_password_is_not_stored_in_plain(destination, buyer_host, deliver):
    destination.auth, destination.auth_username = DeliveryDestination.Auth.BASIC, "acme"
    destination.save()
    destination_set_auth_secret(destination=destination, secret="s3cret-Pa55")
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    lead = deliver()

    request, _ = buyer_host.log[0]
    assert (request.authorization.type, request.authorization.username) == ("basic", "acme")
    assert request.authorization.password == "s3cret-Pa55"
    stored = DeliveryDestination.objects.get(pk=destination.pk).auth_secret_encrypted
    assert stored and "s3cret-Pa55" not in stored
    assert base64.b64encode(b"s3cret-Pa55").decode() not in stored
    assert Delivery.objects.get(lead=lead).status == "accepted"


def test_bearer_auth_arrives_and_the_token_is_not_stored_in_plain(destination, buyer_host, deliver):
    destination.auth = DeliveryDestination.Auth.BEARER
    destination.save()
    destination_set_auth_secret(destination=destination, secret="tok_live_123456")
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver()

    request, _ = buyer_host.log[0]
    assert request.headers["Authorization"] == "Bearer tok_live_123456"
    stored = DeliveryDestination.objects.get(pk=destination.pk).auth_secret_encrypted
    assert stored and "tok_live_123456" not in stored


# --- 3. Retries -----------------------------------------------------------------------------------


def test_a_500_is_retried_after_about_5_seconds_and_then_delivered(destination, buyer_host, deliver):
    def slow_error(request):
        time.sleep(0.05)  # so the logged latency has something to show
        return Response("upstream busy", status=500)

    buyer_host.expect_ordered_request("/leads").respond_with_handler(slow_error)
    buyer_host.expect_ordered_request("/leads").respond_with_json({"id": "B-7"})

    lead = deliver()

    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert entry.status == "pending"
    assert 5 * 0.9 - 1 <= seconds_until(entry.next_attempt_at) <= 5 * 1.1
    assert outbox_process(entry_id=entry.pk) == "not due"  # not before its time
    assert len(buyer_host.log) == 1

    assert run_when_due(entry) == "done"

    delivery.refresh_from_db()
    entry.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("accepted", 2, 200)
    assert entry.status == "done"
    first, second = delivery.attempt_log.order_by("started_at", "id")
    assert (first.status_code, first.outcome, first.response_excerpt) == (500, "retry", "upstream busy")
    assert first.latency_ms >= 50
    assert (second.status_code, second.outcome, json.loads(second.response_excerpt)) == (
        200,
        "accepted",
        {"id": "B-7"},
    )
    assert first.url == second.url == destination.url


def test_the_attempt_log_keeps_only_the_first_2000_characters_of_the_answer(destination, buyer_host, deliver):
    long_answer = "a" * (EXCERPT_CHARS - 1) + "b" + "c" * 3000
    buyer_host.expect_request("/leads").respond_with_data(long_answer, status=503)

    lead = deliver()

    attempt = Delivery.objects.get(lead=lead).attempt_log.get()
    assert EXCERPT_CHARS == 2000
    assert attempt.response_excerpt == long_answer[:2000]
    assert attempt.response_excerpt.endswith("ab")


def test_429_with_retry_after_waits_as_long_as_the_buyer_asks(destination, buyer_host, deliver):
    buyer_host.expect_request("/leads").respond_with_data("slow down", status=429, headers={"Retry-After": "120"})

    lead = deliver()

    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    assert (delivery.status, delivery.last_status_code, entry.status) == ("pending", 429, "pending")
    assert 119 <= seconds_until(entry.next_attempt_at) <= 120
    assert attempts_of(delivery) == [(429, "retry")]


def test_a_buyer_slower_than_the_timeout_is_retried_with_the_error_logged(destination, buyer_host, deliver):
    destination.timeout_seconds = 1
    destination.save()
    answer_now = threading.Event()

    def too_slow(request):
        answer_now.wait(timeout=5)  # longer than the timeout; released as soon as we gave up
        return Response('{"ok": true}', status=200, content_type="application/json")

    buyer_host.expect_request("/leads").respond_with_handler(too_slow)
    started = time.monotonic()
    try:
        lead = deliver()
    finally:
        answer_now.set()

    assert 1 <= time.monotonic() - started < 4
    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    attempt = delivery.attempt_log.get()
    assert (attempt.status_code, attempt.outcome) == (None, "retry")
    assert "timed out" in attempt.error.lower()
    assert (delivery.status, entry.status) == ("pending", "pending")
    assert "timed out" in delivery.reason.lower()
    assert 5 * 0.9 - 1 <= seconds_until(entry.next_attempt_at) <= 5 * 1.1


def test_a_refused_connection_is_retried_with_the_error_logged(campaign, buyer_host, deliver):
    with socket.socket() as probe:  # a port nobody listens on, on the allowed host
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Down", url=f"http://{buyer_host.host}:{closed_port}/leads"
    )
    destination_rotate_secret(destination=down)
    DeliveryRoute.objects.create(offer=campaign.offer, destination=down)

    lead = deliver()

    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    attempt = delivery.attempt_log.get()
    assert (attempt.status_code, attempt.outcome) == (None, "retry")
    assert "refused" in attempt.error.lower()
    assert (delivery.status, entry.status) == ("pending", "pending")
    assert 5 * 0.9 - 1 <= seconds_until(entry.next_attempt_at) <= 5 * 1.1


def test_after_the_last_scheduled_retry_the_delivery_and_its_outbox_entry_fail(destination, buyer_host, deliver):
    buyer_host.expect_request("/leads").respond_with_data("down for maintenance", status=503)
    lead = deliver()
    entry = delivery_entry(lead)

    for attempt, delay in enumerate(RETRY_DELAYS, start=1):
        entry.refresh_from_db()
        assert entry.status == "pending", f"after attempt {attempt}"
        assert delay * 0.9 - 1 <= seconds_until(entry.next_attempt_at) <= delay * 1.1, f"after attempt {attempt}"
        expected = "retry" if attempt < len(RETRY_DELAYS) else "failed"
        assert run_when_due(entry) == expected

    delivery = Delivery.objects.get(lead=lead)
    entry.refresh_from_db()
    assert len(buyer_host.log) == len(RETRY_DELAYS) + 1 == 8
    assert (delivery.status, delivery.attempts, entry.status) == ("failed", 8, "failed")
    assert delivery.reason == "gave up after 8 attempts; last: HTTP 503"
    assert attempts_of(delivery) == [(503, "retry")] * 7 + [(503, "failed")]
    assert run_when_due(entry) == "not due"  # a failed entry waits for staff
    assert len(buyer_host.log) == 8


# --- 4. Final answers and rejections ------------------------------------------------------------------


def test_410_gone_fails_the_delivery_and_disables_the_destination(destination, buyer_host, deliver):
    buyer_host.expect_request("/leads").respond_with_data("gone", status=410)

    lead = deliver()

    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    destination.refresh_from_db()
    assert (delivery.status, delivery.last_status_code, entry.status) == ("failed", 410, "failed")
    assert destination.is_active is False
    assert "410 Gone" in destination.disabled_reason

    later = deliver()  # the next lead is not sent to a disabled buyer

    assert len(buyer_host.log) == 1
    assert not Delivery.objects.filter(lead=later).exists()
    assert delivery_entry(later).payload == {"held": "no buyer left for this offer"}


def test_404_fails_the_delivery_without_retrying(destination, buyer_host, deliver):
    buyer_host.expect_request("/leads").respond_with_data("no such page", status=404)

    lead = deliver()

    delivery, entry = Delivery.objects.get(lead=lead), delivery_entry(lead)
    assert (delivery.status, delivery.attempts, entry.status) == ("failed", 1, "failed")
    assert "404" in delivery.reason
    assert run_when_due(entry) == "not due"
    assert len(buyer_host.log) == 1
    destination.refresh_from_db()
    assert destination.is_active is True


@pytest.mark.parametrize("status", [400, 422])
def test_a_rejection_keeps_the_buyers_reason_and_the_lead_goes_to_the_next_buyer_at_once(
    campaign, buyer_host, deliver, status
):
    first = add_buyer(campaign, buyer_host, "/first", reason_json_path="errors.0.message", route={"priority": 1})
    second = add_buyer(campaign, buyer_host, "/second", route={"priority": 2})
    buyer_host.expect_request("/first").respond_with_json(
        {"errors": [{"message": "zip code outside our area"}]}, status=status
    )
    buyer_host.expect_request("/second").respond_with_json({"ok": True})

    lead = deliver()

    assert [request.path for request, _ in buyer_host.log] == ["/first", "/second"]
    rejected = Delivery.objects.get(lead=lead, destination=first)
    assert (rejected.status, rejected.reason, rejected.last_status_code) == (
        "rejected",
        "zip code outside our area",
        status,
    )
    assert Delivery.objects.get(lead=lead, destination=second).status == "accepted"
    assert delivery_entry(lead).status == "done"


def test_a_2xx_answer_that_fails_the_accept_rule_is_a_rejection_with_the_buyers_reason(
    destination, buyer_host, deliver
):
    destination.accept_json_path, destination.accept_json_value = "status", "accepted"
    destination.reason_json_path = "reason"
    destination.save()
    buyer_host.expect_request("/leads").respond_with_json({"status": "duplicate", "reason": "seen"})

    lead = deliver()

    delivery = Delivery.objects.get(lead=lead)
    assert (delivery.status, delivery.reason, delivery.last_status_code) == ("rejected", "seen", 200)
    assert attempts_of(delivery) == [(200, "rejected")]


def test_a_2xx_answer_that_meets_the_accept_rule_is_accepted(destination, buyer_host, deliver):
    destination.accept_json_path, destination.accept_json_value = "result.status", "accepted"
    destination.save()
    buyer_host.expect_request("/leads").respond_with_json({"result": {"status": "Accepted"}})

    lead = deliver()

    assert Delivery.objects.get(lead=lead).status == "accepted"


# --- 5. Routing --------------------------------------------------------------------------------------


def test_buyers_that_do_not_take_the_country_or_lead_type_are_skipped(campaign, buyer_host, deliver):
    add_buyer(campaign, buyer_host, "/canada-only", route={"priority": 1, "accepted_countries": ["CA"]})
    add_buyer(campaign, buyer_host, "/soft-only", route={"priority": 2, "accepted_lead_types": ["soft"]})
    anyone = add_buyer(campaign, buyer_host, "/anyone", route={"priority": 3})
    buyer_host.expect_request("/anyone").respond_with_json({"ok": True})

    lead = deliver(country="US", action="quote")  # a hard lead from the US

    assert lead.lead_type == "hard"
    assert [request.path for request, _ in buyer_host.log] == ["/anyone"]
    assert list(Delivery.objects.filter(lead=lead).values_list("destination", "status")) == [(anyone.pk, "accepted")]


def test_a_lead_no_buyer_takes_is_held_with_the_reasons(campaign, buyer_host, deliver):
    add_buyer(campaign, buyer_host, "/canada-only", name="Canada", route={"accepted_countries": ["CA"]})
    add_buyer(campaign, buyer_host, "/soft-only", name="Soft", route={"accepted_lead_types": ["soft"]})

    lead = deliver(country="US", action="quote")

    entry = delivery_entry(lead)
    assert buyer_host.log == []
    assert not Delivery.objects.filter(lead=lead).exists()
    assert entry.status == "pending"
    assert entry.payload == {
        "held": "no buyer takes it (Canada: country US not accepted; Soft: hard leads not accepted)"
    }
    assert list(held_deliveries()) == [entry]
    assert 3600 - 5 <= seconds_until(entry.next_attempt_at) <= 3600


def test_the_buyer_with_the_lowest_priority_number_gets_the_lead(campaign, buyer_host, deliver):
    add_buyer(campaign, buyer_host, "/first-created", route={"priority": 2})
    preferred = add_buyer(campaign, buyer_host, "/preferred", route={"priority": 1})
    buyer_host.expect_request("/preferred").respond_with_json({"ok": True})

    lead = deliver()

    assert [request.path for request, _ in buyer_host.log] == ["/preferred"]
    assert Delivery.objects.get(lead=lead).destination == preferred


@pytest.fixture
def seeded_random():
    state = random.getstate()
    random.seed(20240601)
    yield
    random.setstate(state)


def test_buyers_of_equal_priority_share_leads_by_weight(campaign, buyer_host, capture, seeded_random):
    heavy = add_buyer(campaign, buyer_host, "/heavy", route={"weight": 3})
    light = add_buyer(campaign, buyer_host, "/light", route={"weight": 1})
    routes = list(DeliveryRoute.objects.select_related("destination").order_by("priority", "id"))
    lead = capture(email="jo@example.com", country="US")

    chosen = [choose_route(lead, routes, timezone.now()).route.destination for _ in range(200)]

    assert 130 <= chosen.count(heavy) <= 170  # 150 expected
    assert chosen.count(heavy) + chosen.count(light) == 200


def test_a_buyer_at_its_hourly_cap_passes_the_lead_to_the_next_buyer(campaign, buyer_host, deliver):
    capped = add_buyer(campaign, buyer_host, "/capped", route={"priority": 1, "hourly_cap": 1})
    overflow = add_buyer(campaign, buyer_host, "/overflow", route={"priority": 2})
    buyer_host.expect_request("/capped").respond_with_json({"ok": True})
    buyer_host.expect_request("/overflow").respond_with_json({"ok": True})

    first, second = deliver(), deliver()

    assert [request.path for request, _ in buyer_host.log] == ["/capped", "/overflow"]
    assert Delivery.objects.get(lead=first).destination == capped
    assert Delivery.objects.get(lead=second).destination == overflow


def test_over_the_hourly_cap_the_lead_is_held_until_the_next_hour(campaign, buyer_host, deliver):
    add_buyer(campaign, buyer_host, "/leads", route={"hourly_cap": 1})
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver()
    held = deliver()

    entry = delivery_entry(held)
    next_hour = timezone.localtime().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert len(buyer_host.log) == 1
    assert entry.payload == {"held": "every buyer is at its cap"}
    assert abs((entry.next_attempt_at - next_hour).total_seconds()) < 2


def test_over_the_daily_cap_the_lead_is_held_until_local_midnight_and_released_when_the_cap_is_raised(
    campaign, buyer_host, deliver, settings, django_capture_on_commit_callbacks
):
    # Caps count local days. UTC-3 all year: its midnight is never UTC midnight, and its date is
    # UTC's for 21 hours a day, when a reset computed from the UTC day would land a day early.
    settings.TIME_ZONE = "America/Sao_Paulo"
    add_buyer(campaign, buyer_host, "/leads", route={"daily_cap": 2})
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    deliver(), deliver()
    third = deliver()

    entry = delivery_entry(third)
    local_midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert len(buyer_host.log) == 2
    assert not Delivery.objects.filter(lead=third).exists()
    assert (entry.status, entry.payload) == ("pending", {"held": "every buyer is at its cap"})
    assert abs((entry.next_attempt_at - local_midnight).total_seconds()) < 2
    assert list(held_deliveries()) == [entry]
    assert third.events.filter(kind="delivery", data__held="every buyer is at its cap").exists()

    DeliveryRoute.objects.filter(offer=campaign.offer).update(daily_cap=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_release_held() == 1

    entry.refresh_from_db()
    assert len(buyer_host.log) == 3
    assert json.loads(buyer_host.log[2][0].get_data())["id"] == str(third.public_id)
    assert Delivery.objects.get(lead=third).status == "accepted"
    assert entry.status == "done"
    assert list(held_deliveries()) == []


def test_a_held_lead_returned_while_it_waited_is_not_delivered_on_release(
    campaign, buyer_host, deliver, django_capture_on_commit_callbacks
):
    add_buyer(campaign, buyer_host, "/leads", route={"daily_cap": 1})
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})
    deliver()
    held = deliver()
    lead_set_status(lead=held, status="returned", actor=None, reason="wrong number")
    DeliveryRoute.objects.filter(offer=campaign.offer).update(daily_cap=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_release_held() == 1

    entry = delivery_entry(held)
    assert len(buyer_host.log) == 1
    assert not Delivery.objects.filter(lead=held).exists()
    assert entry.status == "done"
    assert entry.payload == {"skipped": "not deliverable (invalid, duplicate, test or returned)"}


def test_only_valid_new_real_leads_are_delivered(destination, buyer_host, deliver):
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})
    original = deliver(email="jo@example.com")

    duplicate = deliver(email="jo@example.com")
    invalid = deliver(email="not-an-email")
    sandbox = deliver(email="sandbox@example.com", context={"is_test": True})

    assert (duplicate.is_duplicate, invalid.validity, sandbox.is_test) == (True, "invalid", True)
    assert len(buyer_host.log) == 1
    assert json.loads(buyer_host.log[0][0].get_data())["id"] == str(original.public_id)
    assert list(Delivery.objects.values_list("lead", flat=True)) == [original.pk]
    for lead in (duplicate, invalid, sandbox):
        assert not lead.outbox_entries.filter(kind="delivery").exists()


# --- 6. Staff actions ------------------------------------------------------------------------------


def test_redelivering_a_failed_delivery_resends_it_under_the_same_webhook_id(
    destination, buyer_host, deliver, django_capture_on_commit_callbacks
):
    buyer_host.expect_ordered_request("/leads").respond_with_data("not found", status=404)
    buyer_host.expect_ordered_request("/leads").respond_with_json({"id": "B-9"})
    destination.reference_json_path = "id"
    destination.save()
    lead = deliver()
    delivery = Delivery.objects.get(lead=lead)
    assert delivery.status == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_redeliver(deliveries=Delivery.objects.filter(pk=delivery.pk)) == (1, {})

    delivery.refresh_from_db()
    (first, _), (second, _) = buyer_host.log
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
    assert (delivery.status, delivery.buyer_reference) == ("accepted", "B-9")
    assert attempts_of(delivery) == [(404, "failed"), (200, "accepted")]
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_redeliver(deliveries=Delivery.objects.filter(pk=delivery.pk)) == (
            0,
            {},
        )  # accepted: left alone
    assert len(buyer_host.log) == 2


def test_staff_redelivery_keeps_to_the_buyers_credit_limit_and_cap_and_says_why_not(
    campaign, buyer_host, deliver, client, superuser, django_capture_on_commit_callbacks
):
    buyer = add_buyer(campaign, buyer_host, "/leads", route={"price_per_lead": Decimal("25.00"), "daily_cap": 2})
    buyer_host.expect_ordered_request("/leads").respond_with_data("down", status=404)
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})
    buyer_account_save(account=BuyerAccount(advertiser=buyer.advertiser, currency="USD", credit_limit=Decimal("30")))
    failed = Delivery.objects.get(lead=deliver())
    assert failed.status == "failed"
    sold = Delivery.objects.get(lead=deliver())  # 25.00 of the buyer's 30.00 credit spent since
    assert sold.status == "accepted"
    client.force_login(superuser)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(
            reverse("admin:leads_delivery_changelist"),
            {"action": "redeliver", "_selected_action": [failed.pk]},
            follow=True,
        )

    text = page.content.decode()
    assert "0 delivery(ies) will be sent again" in text
    assert (
        f"Not sent again, as the buyer would refuse them now: #{failed.pk}: at its credit limit (5.00 USD left)" in text
    )
    assert len(requests_to(buyer_host, "/leads")) == 2
    failed.refresh_from_db()
    assert failed.status == "failed" and buyer_balance(buyer.advertiser_id, "USD") == Decimal("-25.00")

    ledger_record_payment(advertiser=buyer.advertiser, amount=Decimal("100.00"), currency="USD", reference="wire 1")
    Delivery.objects.get(lead=deliver())  # the second lead of the day: the cap of 2 is full
    assert deliveries_redeliver(deliveries=Delivery.objects.filter(pk=failed.pk)) == (
        0,
        {failed.pk: "at its daily cap"},
    )


def test_route_next_sends_a_failed_deliverys_lead_to_another_buyer(
    campaign, buyer_host, deliver, django_capture_on_commit_callbacks
):
    broken = add_buyer(campaign, buyer_host, "/broken", route={"priority": 1})
    other = add_buyer(campaign, buyer_host, "/other", route={"priority": 2})
    buyer_host.expect_request("/broken").respond_with_data("not found", status=404)
    buyer_host.expect_request("/other").respond_with_json({"ok": True})
    lead = deliver()
    failed = Delivery.objects.get(lead=lead, destination=broken)
    assert failed.status == "failed"
    assert requests_to(buyer_host, "/other") == []  # a failure is not passed on by itself

    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_route_next(deliveries=Delivery.objects.filter(pk=failed.pk)) == 1

    [request] = requests_to(buyer_host, "/other")
    assert json.loads(request.get_data())["id"] == str(lead.public_id)
    assert Delivery.objects.get(lead=lead, destination=other).status == "accepted"


def test_route_next_does_not_resell_a_lead_another_buyer_already_accepted(
    campaign, buyer_host, deliver, django_capture_on_commit_callbacks
):
    broken = add_buyer(campaign, buyer_host, "/broken", route={"priority": 1})
    add_buyer(campaign, buyer_host, "/second", route={"priority": 2})
    add_buyer(campaign, buyer_host, "/third", route={"priority": 3})
    buyer_host.expect_request("/broken").respond_with_data("not found", status=404)
    buyer_host.expect_request("/second").respond_with_json({"ok": True})
    buyer_host.expect_request("/third").respond_with_json({"ok": True})
    lead = deliver()
    failed = Delivery.objects.filter(pk=Delivery.objects.get(lead=lead, destination=broken).pk)
    with django_capture_on_commit_callbacks(execute=True):
        deliveries_route_next(deliveries=failed)
    assert lead.deliveries.filter(status="accepted").count() == 1

    with django_capture_on_commit_callbacks(execute=True):  # the same failed row picked again later
        deliveries_route_next(deliveries=failed)

    assert requests_to(buyer_host, "/third") == []
    assert lead.deliveries.filter(status="accepted").count() == 1


def test_redelivering_a_rejection_does_not_sell_a_lead_another_buyer_took(
    campaign, buyer_host, deliver, django_capture_on_commit_callbacks
):
    picky = add_buyer(campaign, buyer_host, "/picky", route={"priority": 1})
    add_buyer(campaign, buyer_host, "/second", route={"priority": 2})
    buyer_host.expect_request("/picky").respond_with_json({"error": "seen"}, status=400)
    buyer_host.expect_request("/second").respond_with_json({"ok": True})
    lead = deliver()
    rejected = Delivery.objects.filter(lead=lead, destination=picky)
    assert rejected.get().status == "rejected"

    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_redeliver(deliveries=rejected) == (0, {})

    assert len(requests_to(buyer_host, "/picky")) == 1
    (sold,) = lead.deliveries.filter(status="accepted")
    assert sold.destination != picky
    assert rejected.get().status == "rejected"


def test_a_pending_retry_is_not_sent_after_the_lead_was_returned(destination, buyer_host, deliver):
    buyer_host.expect_oneshot_request("/leads").respond_with_data("busy", status=503)
    lead = deliver()
    delivery = Delivery.objects.get(lead=lead)
    assert delivery.status == "pending"
    Lead.objects.filter(pk=lead.pk).update(status="returned")

    assert run_when_due(delivery_entry(lead)) == "done"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason) == (
        "failed",
        "not sent: the lead was returned or is no longer deliverable",
    )
    assert len(requests_to(buyer_host, "/leads")) == 1  # only the first attempt


def test_an_http_destination_without_a_signing_secret_gets_nothing_and_says_why(campaign, buyer_host, deliver):
    unsigned = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Unsigned", url=buyer_host.url_for("/unsigned")
    )
    DeliveryRoute.objects.create(offer=campaign.offer, destination=unsigned)

    lead = deliver()

    delivery = Delivery.objects.get(lead=lead)
    assert delivery.status == "failed"
    assert "no signing secret" in delivery.reason
    assert requests_to(buyer_host, "/unsigned") == []


# --- 7. Email destinations ---------------------------------------------------------------------------


def test_an_email_destination_gets_the_lead_in_its_sales_inbox(campaign, deliver):
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser,
        name="Sales inbox",
        kind=DeliveryDestination.Kind.EMAIL,
        email_to=["sales@buyer.example"],
    )
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)

    lead = deliver(email="jo@example.com", first_name="Jo", last_name="Smith", phone="+1 650 555 1212")

    [message] = [message for message in mail.outbox if message.to == ["sales@buyer.example"]]
    delivery = Delivery.objects.get(lead=lead)
    assert message.subject == "New hard lead: Jo Smith (Solar quote)"
    assert message.extra_headers["X-Leadcrm-Delivery-Id"] == delivery.webhook_id
    assert message.message()["X-Leadcrm-Delivery-Id"] == delivery.webhook_id
    lines = message.body.splitlines()
    for label, value in [
        ("Email", "jo@example.com"),
        ("Phone", "+16505551212"),
        ("First name", "Jo"),
        ("Last name", "Smith"),
        ("Country", "US"),
    ]:
        assert any(line.startswith(label) and line.endswith(value) for line in lines), (label, value)
    assert str(lead.public_id) in message.body
    assert (delivery.status, delivery.attempts) == ("accepted", 1)
    assert delivery.attempt_log.get().url == "mailto:sales@buyer.example"


# --- 8. Transactions ---------------------------------------------------------------------------------


class FailedAfterCapture(Exception):
    pass


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_request_that_fails_after_the_lead_insert_leaves_no_outbox_row_and_sends_nothing(
    capture, destination, buyer_host
):
    buyer_host.expect_request("/leads").respond_with_json({"ok": True})

    with pytest.raises(FailedAfterCapture), transaction.atomic():
        capture(email="jo@example.com", first_name="Jo", country="US")
        raise FailedAfterCapture  # e.g. the view's next step fails

    assert not Lead.objects.exists()
    assert not OutboxEntry.objects.exists()
    assert not Delivery.objects.exists()
    assert buyer_host.log == []

    lead = capture(email="jo@example.com", first_name="Jo", country="US")  # the same, committed, is sent

    assert [json.loads(request.get_data())["id"] for request, _ in buyer_host.log] == [str(lead.public_id)]
    assert Delivery.objects.get(lead=lead).status == "accepted"

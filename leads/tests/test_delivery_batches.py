"""A batch of deliveries is routed, sent and recorded as a set: a fixed number of queries whatever the
batch's size, with caps, credit limits and the ledger kept as when leads were routed one at a time."""

import itertools
import json
from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from campaigns.tests.factories import CampaignFactory
from leadcrm import config_cache
from leads.models import (
    BuyerAccount,
    Delivery,
    DeliveryAttempt,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LeadEvent,
    LedgerEntry,
    OutboxEntry,
    Partner,
)
from leads.services.accounts import buyer_account_save
from leads.services.calls import perform
from leads.services.delivery import delivery_call, delivery_outbox_batch
from leads.services.ledger import buyer_balance
from leads.services.outbox import CALLS_ENDED, READY_TO_SEND, Recording, RetryLater, outbox_drain
from leads.services.signing import destination_rotate_secret
from leads.tests.factories import LeadFactory
from leads.tests.test_intake_config_cache import _CountingCache

pytestmark = pytest.mark.django_db

# Statements, leaving out transaction control, to route and sign a batch (lock the leads, their
# campaigns with offers and sources (read once per process: here the first time), their earlier
# deliveries, the routes (with whether their buyers keep a suppression list: this one keeps none,
# so no lead is looked up in one) and their prices, cap usage, accounts, promised prices and
# balances, insert the deliveries, set the entries' payloads, the signing secrets; sends routed in
# the batch are not checked again) and to record its answers (a conditional update, attempts with
# the timeline, the sold leads' row locks, ledger, rollups). The same for 3 leads as for 40.
PREPARE_QUERIES = 12
# Elsewhere the rows are read before the update, and the attempts and the timeline take two round trips.
RECORD_QUERIES = 5 if connection.vendor == "postgresql" else 7


@pytest.fixture
def buyer(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    httpserver.expect_request("/leads", method="POST").respond_with_json({"status": "accepted", "id": "b-1"})
    return httpserver


def add_buyer(offer, server, path: str, name: str = "", **route) -> tuple[DeliveryDestination, str]:
    destination = DeliveryDestination.objects.create(
        advertiser=offer.advertiser, name=name or f"Buyer at {path}", url=server.url_for(path), reference_json_path="id"
    )
    secret = destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=offer, destination=destination, **route)
    return destination, secret


def leads_waiting(campaign, count: int) -> list[OutboxEntry]:
    """`count` sellable leads of the campaign, each with its delivery entry due (no buyer chosen yet)."""
    leads = [LeadFactory(campaign=campaign) for _ in range(count)]
    return OutboxEntry.objects.bulk_create(OutboxEntry(lead=lead, kind=OutboxEntry.Kind.DELIVERY) for lead in leads)


def drain() -> dict[int, str]:
    return outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True)


def statements(queries: CaptureQueriesContext) -> list[str]:
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
    return [query["sql"] for query in queries.captured_queries if not query["sql"].startswith(control)]


@pytest.mark.parametrize("size", [3, 40])
def test_a_batch_of_deliveries_costs_the_same_queries_small_or_large_and_each_lead_is_sold_once(buyer, size):
    campaign = CampaignFactory(offer__currency="USD")
    _, secret = add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"), daily_cap=500)
    buyer_account_save(
        account=BuyerAccount(advertiser=campaign.offer.advertiser, currency="USD", credit_limit=Decimal("5000"))
    )
    entries = leads_waiting(campaign, size)

    with CaptureQueriesContext(connection) as preparing:
        prepared = delivery_call.prepare_batch(entries)
    finished = [(entry, delivery, request, perform(request)) for entry, (delivery, request) in prepared]
    with CaptureQueriesContext(connection) as recording:
        ended = delivery_call.record_batch(finished)

    assert len(statements(preparing)) <= PREPARE_QUERIES, statements(preparing)
    assert len(statements(recording)) <= RECORD_QUERIES, statements(recording)
    assert ended == [(entry, None) for entry in entries]  # each entry done
    deliveries = Delivery.objects.filter(lead__campaign=campaign)
    assert [(d.status, d.attempts, d.price, d.buyer_reference) for d in deliveries] == [
        ("accepted", 1, Decimal("25.00"), "b-1")
    ] * size
    # Each lead reached the buyer once, under its delivery's webhook id, signed with the buyer's secret.
    received = [request for request, _ in buyer.log]
    assert Counter(request.headers["webhook-id"] for request in received) == {d.webhook_id: 1 for d in deliveries}
    for request in received:
        Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert DeliveryAttempt.objects.filter(delivery__in=deliveries, outcome="accepted").count() == size
    assert LedgerEntry.objects.filter(kind="lead_sold", delivery__in=deliveries).count() == size
    assert buyer_balance(campaign.offer.advertiser_id, "USD") == Decimal("-25.00") * size
    assert LeadEvent.objects.filter(kind="delivery", data__outcome="accepted").count() == size


def test_a_batch_fills_a_buyers_hourly_cap_then_routes_the_rest_to_the_next_buyer(buyer):
    campaign = CampaignFactory()
    first, _ = add_buyer(campaign.offer, buyer, "/leads", priority=1, hourly_cap=3)
    second, _ = add_buyer(campaign.offer, buyer, "/leads", "Second buyer", priority=2)
    leads_waiting(campaign, 7)

    assert set(drain().values()) == {"done"}

    by_buyer = Counter(Delivery.objects.filter(status="accepted").values_list("destination_id", flat=True))
    assert by_buyer == {first.pk: 3, second.pk: 4}


def test_a_batch_spends_a_buyers_credit_lead_by_lead_and_holds_the_rest(buyer):
    campaign = CampaignFactory(offer__currency="USD")
    add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"))
    buyer_account_save(
        account=BuyerAccount(advertiser=campaign.offer.advertiser, currency="USD", credit_limit=Decimal("60.00"))
    )
    entries = leads_waiting(campaign, 4)

    outcomes = drain()

    assert sorted(outcomes.values()) == ["done", "done", "retry", "retry"]
    assert Delivery.objects.filter(status="accepted").count() == 2  # 50.00 of 60.00: a third would pass it
    held = OutboxEntry.objects.filter(pk__in=[entry.pk for entry in entries], payload__has_key="held")
    assert [entry.payload["held"] for entry in held] == [
        "no buyer takes it (Buyer at /leads: at its credit limit (10.00 USD left))"
    ] * 2
    assert buyer_balance(campaign.offer.advertiser_id, "USD") == Decimal("-50.00")
    assert len(buyer.log) == 2


def test_a_buyer_past_a_lowered_credit_limit_is_held_saying_how_far_past(buyer):
    campaign = CampaignFactory(offer__currency="USD")
    add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"))
    account = BuyerAccount(advertiser=campaign.offer.advertiser, currency="USD", credit_limit=Decimal("60.00"))
    buyer_account_save(account=account)
    leads_waiting(campaign, 2)
    drain()  # 50.00 owed
    account.credit_limit = Decimal("20.00")  # lowered below what the buyer owes
    buyer_account_save(account=account)
    [entry] = leads_waiting(campaign, 1)

    drain()

    entry.refresh_from_db()
    assert entry.payload["held"] == "no buyer takes it (Buyer at /leads: over its credit limit (30.00 USD past it))"


def test_a_rejection_in_a_batch_sends_each_rejected_lead_to_the_next_buyer(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    httpserver.expect_request("/picky", method="POST").respond_with_json({"error": "no"}, status=422)
    httpserver.expect_request("/leads", method="POST").respond_with_json({"status": "accepted"})
    campaign = CampaignFactory()
    picky, _ = add_buyer(campaign.offer, httpserver, "/picky", priority=1)
    other, _ = add_buyer(campaign.offer, httpserver, "/leads", priority=2)
    entries = leads_waiting(campaign, 5)

    assert set(drain().values()) == {"retry"}  # rejected: round again at once
    OutboxEntry.objects.update(next_attempt_at=OutboxEntry.objects.first().created_at)
    assert drain() == {entry.pk: "done" for entry in entries}

    outcomes = Counter(Delivery.objects.values_list("destination_id", "status"))
    assert outcomes == {(picky.pk, "rejected"): 5, (other.pk, "accepted"): 5}


@pytest.mark.parametrize("size", [3, 40])
def test_a_workers_batch_reads_the_configuration_version_the_same_few_times_small_or_large(buyer, size, monkeypatch):
    """Each supplier's lead asks for its payout (kept per process until configuration changes): a step
    of a batch reads the version once, as a request does, not once per lead (a Redis round trip each)."""
    campaign = CampaignFactory(offer__currency="USD")
    add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"))
    partner = Partner.objects.create(name="Supplier")
    for lead in [LeadFactory(campaign=campaign, partner=partner) for _ in range(size)]:
        OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY)
    counting = _CountingCache(config_cache.cache)
    monkeypatch.setattr(config_cache, "cache", counting)

    outcomes = drain()

    assert list(outcomes.values()) == ["done"] * size
    assert Delivery.objects.filter(lead__partner=partner, status="accepted").count() == size
    assert 1 <= counting.version_reads <= 4


def test_a_prepared_batch_whose_leads_changed_while_it_waited_to_send_sends_only_the_unchanged(buyer):
    """A batch prepared while the one before was still calling sends later: a lead erased or returned in
    between is not sent on the strength of the earlier checks: it goes back to be checked again."""
    campaign = CampaignFactory(offer__currency="USD")
    add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"))
    entries = leads_waiting(campaign, 3)
    steps = delivery_outbox_batch(entries, deadline=float("inf"))
    assert next(steps) is READY_TO_SEND  # routed and signed; its turn to send comes later

    erased, returned, kept = (entry.lead for entry in entries)
    Lead.objects.filter(pk=erased.pk).update(erased_at=timezone.now())
    Lead.objects.filter(pk=returned.pk).update(status="returned")
    results = [step for step in steps if isinstance(step, tuple)]

    retried = {entry.lead_id: error for entry, error in results if isinstance(error, RetryLater)}
    assert set(retried) == {erased.pk, returned.pk}
    assert len(buyer.log) == 1 and Delivery.objects.get(lead=kept).webhook_id == buyer.log[0][0].headers["webhook-id"]


def test_the_next_batch_sends_while_the_answers_before_are_written_but_never_the_same_delivery_again(buyer):
    """A draining worker sends its next batch once the calls of the one before have answered, while
    their answers are being written: a delivery both batches hold (a redelivery's entry beside the
    lead's own) is not sent again on the strength of a status not written yet; it is checked again."""
    campaign = CampaignFactory(offer__currency="USD")
    add_buyer(campaign.offer, buyer, "/leads", price_per_lead=Decimal("25.00"))
    [first] = leads_waiting(campaign, 1)
    sending = delivery_outbox_batch([first], deadline=float("inf"))
    assert next(sending) is READY_TO_SEND
    list(itertools.takewhile(lambda step: step is not CALLS_ENDED, sending))  # answered, not written
    delivery = Delivery.objects.get(lead=first.lead)
    again = OutboxEntry.objects.create(
        lead=first.lead, kind=OutboxEntry.Kind.DELIVERY, payload={"delivery": delivery.pk}
    )

    next_batch = delivery_outbox_batch([again], deadline=float("inf"))
    assert next(next_batch) is READY_TO_SEND
    [(entry, error)] = [step for step in next_batch if isinstance(step, tuple)]

    assert entry == again and isinstance(error, RetryLater)
    assert len(buyer.log) == 1 and Delivery.objects.get(pk=delivery.pk).status == "pending"
    [recording] = [step for step in sending if isinstance(step, Recording)]
    with transaction.atomic():
        assert recording.write() == [(first, None)]
    assert Delivery.objects.get(pk=delivery.pk).status == "accepted"
    assert [step for step in delivery_outbox_batch([again], deadline=float("inf"))] == [(again, None)]
    assert len(buyer.log) == 1  # sold: nothing more to send


def test_two_entries_of_one_lead_in_a_batch_send_it_once_and_the_buyer_that_took_it_pays(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    posts = Counter()

    def first_post_accepted(request):
        # A buyer that takes a lead once and calls a repeat of the same webhook a duplicate.
        webhook_id = request.headers["webhook-id"]
        posts[webhook_id] += 1
        answer = "accepted" if posts[webhook_id] == 1 else "duplicate"
        return Response(json.dumps({"status": answer}), content_type="application/json")

    httpserver.expect_request("/a", method="POST").respond_with_handler(first_post_accepted)
    httpserver.expect_request("/b", method="POST").respond_with_json({"status": "accepted"})
    campaign = CampaignFactory()
    first, _ = add_buyer(campaign.offer, httpserver, "/a", priority=1)
    first.accept_json_path, first.accept_json_value = "status", "accepted"
    first.save()
    add_buyer(campaign.offer, httpserver, "/b", priority=2)
    lead = LeadFactory(campaign=campaign)
    # Staff pressed "route to next buyer" twice: two entries of the lead, due together.
    entries = OutboxEntry.objects.bulk_create(OutboxEntry(lead=lead, kind=OutboxEntry.Kind.DELIVERY) for _ in range(2))

    outbox_drain(entry_ids=[entry.pk for entry in entries])
    outbox_drain(entry_ids=[entry.pk for entry in entries])

    assert [request.path for request, _ in httpserver.log] == ["/a"]
    assert list(Delivery.objects.filter(lead=lead).values_list("destination", "status")) == [(first.pk, "accepted")]
    sales = LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD)
    assert list(sales.values_list("advertiser_id", flat=True)) == [first.advertiser_id]
    assert sorted(OutboxEntry.objects.filter(pk__in=[e.pk for e in entries]).values_list("status", flat=True)) == [
        "done",
        "done",
    ]

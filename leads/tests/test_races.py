"""Work racing on separate database connections: one original per contact, fair round-robin."""

import threading
from collections import Counter

import pytest
from django.db import connection

from campaigns.tests.factories import CampaignFactory
from leads.models import Lead
from leads.services import CaptureContext, lead_auto_assign, lead_capture, parse_submission
from leads.tests.factories import LeadFactory

RACERS = 8


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_identical_submissions_racing_yield_one_original_and_the_rest_duplicates():
    campaign = CampaignFactory()
    barrier = threading.Barrier(RACERS)
    errors = []

    def submit(number: int) -> None:
        try:
            submission = parse_submission({"email": "racer@example.com", "phone": "+16505551212", "action": "quote"})
            barrier.wait(timeout=10)
            lead_capture(campaign=campaign, submission=submission, context=CaptureContext(door="api"))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(number,)) for number in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    leads = list(Lead.objects.order_by("created_at", "id"))
    assert len(leads) == RACERS
    originals = [lead for lead in leads if not lead.is_duplicate]
    assert len(originals) == 1
    assert {lead.duplicate_of_id for lead in leads if lead.is_duplicate} == {originals[0].pk}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_leads_assigned_at_the_same_moment_are_shared_out_evenly(staff_user_in):
    reps = [staff_user_in("Sales", username=f"rep{number}") for number in range(3)]
    leads = [LeadFactory() for _ in range(RACERS - 2)]
    barrier = threading.Barrier(len(leads))
    errors = []

    def assign(lead_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            lead_auto_assign(lead_id=lead_id)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=assign, args=(lead.pk,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    shares = Counter(Lead.objects.values_list("assigned_to__username", flat=True))
    assert shares == {rep.username: 2 for rep in reps}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time")
def test_a_return_made_while_a_sale_is_being_recorded_reverses_that_sale():
    """The buyer's acceptance is being written when staff return the lead: the return waits for the
    sale's transaction and reverses it, rather than reading the ledger before the sale is there."""
    from decimal import Decimal

    from django.db import transaction

    from campaigns.tests.factories import OfferFactory
    from leads.models import DeliveryDestination, DeliveryRoute, LedgerEntry, OutboxEntry
    from leads.services import lead_set_status
    from leads.services.answers import Outcome, Verdict
    from leads.services.delivery import SentRequest, _record, _route

    offer = OfferFactory(currency="USD", return_window_days=7)
    destination = DeliveryDestination.objects.create(
        advertiser=offer.advertiser, name="Inbox", kind="email", email_to=["sales@buyer.example"]
    )
    DeliveryRoute.objects.create(offer=offer, destination=destination, price_per_lead=Decimal("25.00"))
    lead = LeadFactory(campaign=CampaignFactory(offer=offer), country="CA")
    delivery = _route(OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY))
    errors = []

    def return_it() -> None:
        try:
            lead_set_status(lead=lead, status="returned", actor=None, reason="fraud")
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    returner = threading.Thread(target=return_it)
    with transaction.atomic():
        _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)))
        returner.start()
        # Until the return either ends (it did not wait for this sale) or waits on a lock (the lead's).
        with connection.cursor() as cursor:
            for _ in range(2000):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] or not returner.is_alive():
                    break
                returner.join(timeout=0.01)
    returner.join(timeout=30)

    assert errors == []
    kinds = list(LedgerEntry.objects.filter(lead=lead).order_by("id").values_list("kind", "amount"))
    assert kinds == [("lead_sold", Decimal("25.00")), ("lead_returned", Decimal("-25.00"))]

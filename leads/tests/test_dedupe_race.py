"""Identical submissions racing on separate database connections: exactly one original."""

import threading

import pytest
from django.db import connection

from campaigns.tests.factories import CampaignFactory
from leads.models import Lead
from leads.services import CaptureContext, lead_capture, parse_submission

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

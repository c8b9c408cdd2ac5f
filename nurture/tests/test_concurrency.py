"""Ticks running at once on several workers (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED)."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leads.models import Lead
from leads.tests.factories import LeadFactory
from nurture.models import Enrollment, NurtureMessage
from nurture.services.engine import nurture_tick

from .conftest import email_step, wait_step

ENROLLMENTS = 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks with SKIP LOCKED need PostgreSQL")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_ticks_never_run_a_step_twice(make_flow):
    flow = make_flow(email_step(1), wait_step(days=1), email_step(2))
    campaign = CampaignFactory()
    leads = Lead.objects.bulk_create(
        LeadFactory.build(consent=True, campaign=campaign, email=f"lead{n}@example.com") for n in range(ENROLLMENTS)
    )
    Enrollment.objects.bulk_create(
        Enrollment(flow=flow, lead=lead, step=flow.steps.get(position=0), next_run_at=timezone.now()) for lead in leads
    )
    now = timezone.now() + timedelta(seconds=1)
    barrier = threading.Barrier(2)
    runs, errors = [], []

    def worker():
        try:
            barrier.wait()
            runs.append(nurture_tick(now=now, batch_size=10))  # each batch commits and sends its emails
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and len(runs) == 2
    assert sum(runs) == ENROLLMENTS  # every due enrollment was run, by one tick or the other
    per_enrollment = NurtureMessage.objects.values("enrollment").annotate(n=Count("id")).values_list("n", flat=True)
    assert len(per_enrollment) == ENROLLMENTS and set(per_enrollment) == {1}
    assert NurtureMessage.objects.filter(status="sent").count() == ENROLLMENTS
    assert len(mail.outbox) == ENROLLMENTS
    assert sorted(m.to[0] for m in mail.outbox) == sorted(lead.email for lead in leads)
    assert Enrollment.objects.filter(waiting=True, step__position=10).count() == ENROLLMENTS

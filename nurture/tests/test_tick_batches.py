"""A tick costs a fixed number of queries per batch, whatever the batch's size, and writes every
enrollment's own new state (its step, wait, exit and reason) in one statement."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.tests.factories import CampaignFactory
from leads.models import LeadEvent, OutboxEntry
from leads.tests.factories import LeadFactory
from nurture import follow_ups
from nurture.models import Enrollment, FlowStep, NurtureMessage, Suppression
from nurture.services.engine import nurture_tick

from .conftest import email_step, wait_step

pytestmark = pytest.mark.django_db

# Statements of a tick with one batch, leaving out transaction control: lock the due enrollments, the
# flows' steps, suppressions, last emails, the enrollments' update, the messages, their outbox
# entries, timeline events, audience members, one counter per step entered, and the read that
# finds the batch was the last.
TICK_QUERIES = 9


def enrolled(flow, count: int, **lead_fields) -> list[Enrollment]:
    campaign = CampaignFactory()
    first = flow.steps.order_by("position").first()
    return Enrollment.objects.bulk_create(
        Enrollment(flow=flow, lead=LeadFactory(consent=True, campaign=campaign, **lead_fields), step=first)
        for _ in range(count)
    )


@pytest.mark.parametrize("size", [4, 60])
def test_a_tick_costs_the_same_queries_for_few_or_many_due_and_moves_each_enrollment_on(make_flow, start, size):
    flow = make_flow(email_step(1), wait_step(days=2), email_step(2))
    sending = enrolled(flow, size)
    won = enrolled(flow, 2, status="won")  # leaves the flow: converted
    unsubscribed = enrolled(flow, 1)
    Suppression.objects.create(email=unsubscribed[0].lead.email, reason=Suppression.Reason.UNSUBSCRIBED)

    with CaptureQueriesContext(connection) as queries:
        ran = nurture_tick(now=start)

    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
    statements = [query["sql"] for query in queries.captured_queries if not query["sql"].startswith(control)]
    assert len(statements) <= TICK_QUERIES, statements
    assert ran == size + 3
    wait = flow.steps.get(kind=FlowStep.Kind.WAIT)
    assert {
        (e.step_id, e.status, e.waiting, e.next_run_at, e.left_at, e.exit_reason)
        for e in Enrollment.objects.filter(pk__in=[e.pk for e in sending])
    } == {(wait.pk, "active", True, start + timedelta(days=2), None, "")}
    assert {(e.status, e.left_at, e.exit_reason) for e in Enrollment.objects.filter(pk__in=[e.pk for e in won])} == {
        ("exited", start, "converted")
    }
    left = Enrollment.objects.get(pk=unsubscribed[0].pk)
    assert (left.status, left.exit_reason) == ("exited", "suppressed (unsubscribed, bounced or complained)")
    messages = NurtureMessage.objects.filter(enrollment__in=sending)
    assert messages.count() == size and {m.step.subject for m in messages} == {"Email 1 for {{ lead.first_name }}"}
    assert OutboxEntry.objects.filter(kind=follow_ups.EMAIL).count() == size
    assert LeadEvent.objects.filter(kind=LeadEvent.Kind.NURTURE, data__has_key="exited").count() == 3
    assert flow.steps.get(position=10).entered == size

"""The "call a webhook" step sends the lead to a destination, signed, through the outbox."""

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from leads.models import DeliveryDestination, OutboxEntry
from leads.services.outbox import outbox_process
from leads.services.signing import destination_rotate_secret
from nurture.models import FlowStep

from .conftest import wait_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(settings, httpserver, campaign):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser,
        name="Our marketing automation",
        url=httpserver.url_for("/hook"),
        field_mapping={"mail": "email", "given_name": "first_name", "source": {"value": "nurture"}},
    )
    return destination, destination_rotate_secret(destination=destination)


def test_a_webhook_step_posts_the_mapped_lead_signed_and_the_flow_goes_on(make_flow, capture, tick, crm, httpserver):
    destination, secret = crm
    flow = make_flow({"kind": FlowStep.Kind.WEBHOOK, "destination": destination}, wait_step(days=1))
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_json({"ok": True})
    lead = capture(email="ann@example.com", first_name="Ann")

    tick(timezone.now())

    request, _ = httpserver.log[0]
    body = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert body == {"mail": "ann@example.com", "given_name": "Ann", "source": "nurture"}
    event = lead.events.filter(kind="nurture", data__webhook=destination.name).get()
    assert (event.data["outcome"], event.data["status_code"]) == ("accepted", 200)
    assert flow.enrollments.get().step.kind == FlowStep.Kind.WAIT  # the flow moved on


def test_a_failing_webhook_is_retried_under_the_same_webhook_id(make_flow, capture, tick, crm, httpserver):
    destination, _ = crm
    make_flow({"kind": FlowStep.Kind.WEBHOOK, "destination": destination}, wait_step(days=1))
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_json({"ok": True})
    capture(email="ann@example.com", first_name="Ann")

    tick(timezone.now())
    entry = OutboxEntry.objects.get(kind="nurture_webhook")
    assert entry.status == "pending"
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())
    assert outbox_process(entry_id=entry.pk) == "done"

    first, second = (request for request, _ in httpserver.log)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_nurture_{entry.pk}"


def test_a_flows_custom_exit_takes_the_lead_out_before_its_next_step(make_flow, capture, tick):
    from leads.models import Lead

    flow = make_flow(wait_step(days=1), wait_step(days=1), exit_statuses=["contacted"], exit_score_above=95)
    lead = capture(email="ann@example.com", first_name="Ann")
    other = capture(email="bob@example.com", first_name="Bob")
    tick(timezone.now())
    Lead.objects.filter(pk=lead.pk).update(status="contacted")
    Lead.objects.filter(pk=other.pk).update(score=99)

    tick(timezone.now() + timezone.timedelta(days=1, minutes=1))

    reasons = dict(flow.enrollments.values_list("lead_id", "exit_reason"))
    assert reasons == {lead.pk: "status contacted", other.pk: "score above 95"}
    assert set(flow.enrollments.values_list("status", flat=True)) == {"exited"}

"""The "call a webhook" step: the lead goes to a delivery destination (its mapping, authentication,
Standard Webhooks signature and SSRF checks), through the outbox and on the delivery retry schedule."""

from leads.models import Lead, LeadEvent, OutboxEntry
from leads.services.answers import Outcome
from leads.services.calls import settle
from leads.services.delivery import send_lead
from leads.services.outbox import GiveUp, RetryLater

from ..models import FlowStep


def nurture_webhook_handler(entry: OutboxEntry) -> None:
    step = FlowStep.objects.select_related("destination").get(pk=entry.payload["step"])
    lead = Lead.objects.select_related("campaign", "offer", "traffic_source").get(pk=entry.lead_id)
    if lead.erased_at:
        return  # the person asked to be forgotten after the step ran: nothing of theirs goes out
    # The outbox row is the idempotency key: a retry carries the same webhook id.
    sent = send_lead(destination=step.destination, lead=lead, msg_id=f"msg_nurture_{entry.pk}")
    outcome, delay = settle(sent.verdict, entry.attempts)
    if outcome == Outcome.RETRY:
        raise RetryLater(sent.verdict.reason or "the webhook did not answer", delay=delay)
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.NURTURE,
        data={
            "webhook": step.destination.name,
            "flow": entry.payload.get("flow", ""),
            "outcome": outcome,
            "status_code": sent.status_code,
            "reason": sent.verdict.reason,
        },
    )
    if outcome != Outcome.ACCEPTED:
        raise GiveUp(f"webhook {step.destination.name}: {sent.verdict.reason}"[:300])

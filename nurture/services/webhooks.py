"""The "call a webhook" step: the lead goes to a delivery destination (its mapping, authentication,
Standard Webhooks signature and SSRF checks), through the outbox and on the delivery retry schedule."""

from leads.models import Lead, LeadEvent, OutboxEntry
from leads.services.answers import Outcome
from leads.services.calls import CallResult, PartnerRequest, partner_calls_batch, run_partner_call, settle
from leads.services.delivery import lead_request
from leads.services.outbox import GiveUp, RetryLater

from ..models import FlowStep


class WebhookStepCall:
    """The "nurture webhook" follow-up as a partner call."""

    def prepare(self, entry: OutboxEntry) -> tuple[FlowStep, PartnerRequest] | None:
        step = FlowStep.objects.select_related("destination").get(pk=entry.payload["step"])
        if step.destination is None:
            raise GiveUp("the webhook step has no destination")
        lead = Lead.objects.select_related("campaign", "offer", "traffic_source").get(pk=entry.lead_id)
        if lead.erased_at:
            return None  # the person asked to be forgotten after the step ran: nothing of theirs goes out
        # The outbox row is the idempotency key: a retry carries the same webhook id.
        return step, lead_request(destination=step.destination, lead=lead, msg_id=f"msg_nurture_{entry.pk}")

    def record(self, entry: OutboxEntry, step: FlowStep, request: PartnerRequest, result: CallResult) -> None:
        destination = step.destination.name if step.destination else ""
        outcome, delay = settle(result.verdict, entry.attempts)
        if outcome == Outcome.RETRY:
            raise RetryLater(result.verdict.reason or "the webhook did not answer", delay=delay)
        LeadEvent.objects.create(
            lead_id=entry.lead_id,
            kind=LeadEvent.Kind.NURTURE,
            data={
                "webhook": destination,
                "flow": entry.payload.get("flow", ""),
                "outcome": outcome,
                "status_code": result.status_code,
                "reason": result.verdict.reason,
            },
        )
        if outcome != Outcome.ACCEPTED:
            raise GiveUp(f"webhook {destination}: {result.verdict.reason}"[:300])


webhook_step_call = WebhookStepCall()
nurture_webhook_batch = partner_calls_batch(webhook_step_call)


def nurture_webhook_handler(entry: OutboxEntry) -> None:
    run_partner_call(webhook_step_call, entry)

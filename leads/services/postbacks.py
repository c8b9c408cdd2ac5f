"""Postbacks: tell the traffic source that sent a lead's click what the click became.

Which events fire and the payout each reports are set per campaign. Each event is a Postback row
written with the change that caused it, and sent through the outbox with the delivery retry rules.
"""

from decimal import Decimal

from django.db import transaction
from django.db.models import QuerySet, Sum

from campaigns.models import PostbackEvent

from ..models import Lead, LeadEvent, OutboxEntry, Postback
from .calls import CallResult, PartnerRequest, end_entry, partner_calls_batch, perform, record_call, run_partner_call
from .outbox import GiveUp, RetryLater, outbox_enqueue

POSTBACK_TIMEOUT_SECONDS = 10


def _payout(lead: Lead, event: str) -> Decimal:
    campaign, offer = lead.campaign, lead.offer
    if event == PostbackEvent.VALID:
        return campaign.postback_valid_payout if campaign.postback_valid_payout is not None else offer.payout_per_lead
    if event == PostbackEvent.QUALIFIED:
        return campaign.postback_qualified_payout or Decimal("0")
    if event == PostbackEvent.CONVERTED:
        payout = campaign.postback_converted_payout
        return payout if payout is not None else offer.payout_per_sale
    if campaign.postback_return_reversal == "zero":
        return Decimal("0")
    # What the source was (or will be) told; a postback that failed was never reported.
    reported = (
        lead.postbacks.exclude(event=PostbackEvent.RETURNED)
        .exclude(status=Postback.Status.FAILED)
        .aggregate(total=Sum("payout"))["total"]
    )
    return -(reported or Decimal("0"))


def postback_enqueue(*, lead: Lead, event: str) -> Postback | None:
    """Record the event's postback in the caller's transaction, if the campaign wants it."""
    campaign, source = lead.campaign, lead.traffic_source
    if lead.is_test or not lead.click_id or not source.postback_url_template:
        return None
    if event not in campaign.postback_events:
        return None
    if event in (PostbackEvent.VALID, PostbackEvent.QUALIFIED) and not lead.is_billable:
        return None
    postback, created = Postback.objects.get_or_create(
        lead=lead, event=event, defaults={"payout": _payout(lead, event), "currency": lead.offer.currency}
    )
    if created:
        outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.POSTBACK], payload={"postback": postback.pk})
    return postback


def postback_url(postback: Postback) -> str:
    lead = postback.lead
    subs = {f"sub{n}": lead.sub_ids.get(f"sub{n}", "") for n in range(1, 6)}
    return lead.traffic_source.render_postback_url(
        click_id=lead.click_id,
        lead_id=lead.public_id,
        payout=f"{postback.payout:.2f}",
        currency=postback.currency,
        status=postback.event,
        event=postback.event,
        campaign=lead.campaign.slug,
        offer=lead.offer_id,
        **subs,
    )


def _record(postback: Postback, url: str, result: CallResult) -> tuple[str, float | None]:
    with transaction.atomic():
        outcome, delay = record_call(postback, url=url, result=result, attempt_of="postback")
        if postback.status != Postback.Status.PENDING:
            LeadEvent.objects.create(
                lead_id=postback.lead_id,
                kind=LeadEvent.Kind.POSTBACK,
                data={"event": postback.event, "payout": f"{postback.payout:.2f}", "outcome": postback.status},
            )
    return outcome, delay


def postback_request(postback: Postback) -> PartnerRequest:
    return PartnerRequest(
        url=postback_url(postback), method="GET", timeout=POSTBACK_TIMEOUT_SECONDS, follow_redirects=True
    )


def postback_send(*, postback: Postback) -> tuple[str, float | None]:
    request = postback_request(postback)
    return _record(postback, request.url, perform(request))


class PostbackCall:
    """The "postback" follow-up as a partner call: a GET to the traffic source's URL."""

    def prepare(self, entry: OutboxEntry) -> tuple[Postback, PartnerRequest] | None:
        postback = Postback.objects.select_related("lead__campaign", "lead__offer", "lead__traffic_source").get(
            pk=entry.payload["postback"]
        )
        if postback.status == Postback.Status.SENT:
            return None
        if postback.status == Postback.Status.FAILED and not entry.payload.get("resend"):
            raise GiveUp(postback.reason or "postback failed")
        if postback.event == PostbackEvent.RETURNED:
            # A reversal goes after what it reverses, and reverses only what the source was told.
            earlier = postback.lead.postbacks.exclude(event=PostbackEvent.RETURNED)
            if earlier.filter(status=Postback.Status.PENDING).exists():
                raise RetryLater("waits for the lead's earlier postbacks", delay=60)
            if postback.lead.campaign.postback_return_reversal != "zero":
                reported = earlier.filter(status=Postback.Status.SENT).aggregate(total=Sum("payout"))["total"]
                postback.payout = -(reported or Decimal("0"))
                Postback.objects.filter(pk=postback.pk).update(payout=postback.payout)
        return postback, postback_request(postback)

    def record(self, entry: OutboxEntry, postback: Postback, request: PartnerRequest, result: CallResult) -> None:
        outcome, delay = _record(postback, request.url, result)  # keeps postback.reason up to date
        end_entry(outcome, delay, postback.reason or "traffic source did not answer")


postback_call = PostbackCall()
postback_outbox_batch = partner_calls_batch(postback_call)


def postback_outbox_handler(entry: OutboxEntry) -> None:
    run_partner_call(postback_call, entry)


@transaction.atomic
def postbacks_resend(*, postbacks: QuerySet[Postback]) -> int:
    count = 0
    for postback in postbacks.exclude(status__in=(Postback.Status.SENT, Postback.Status.PENDING)):
        Postback.objects.filter(pk=postback.pk).update(status=Postback.Status.PENDING, attempts=0, finished_at=None)
        outbox_enqueue(
            lead=postback.lead, kinds=[OutboxEntry.Kind.POSTBACK], payload={"postback": postback.pk, "resend": True}
        )
        count += 1
    return count

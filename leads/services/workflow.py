"""The sales workflow: status changes, notes and calls. Every change writes a timeline event."""

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from campaigns.models import PostbackEvent
from leadcrm.errors import Conflict, InvalidInput

from ..models import CallLog, Lead, LeadEvent, LeadNote, LeadStatus, PartnerNotification
from ..signals import lead_status_changed
from .ledger import ledger_post_return, ledger_post_sale_commission, return_deadline
from .notifications import partner_notify
from .postbacks import postback_enqueue

S = LeadStatus
POSTBACK_ON_STATUS: dict[str, PostbackEvent] = {S.WON: PostbackEvent.CONVERTED, S.RETURNED: PostbackEvent.RETURNED}
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.NEW: {S.CONTACTED, S.WORKING, S.WON, S.LOST, S.RETURNED},
    S.CONTACTED: {S.WORKING, S.WON, S.LOST, S.RETURNED},
    S.WORKING: {S.CONTACTED, S.WON, S.LOST, S.RETURNED},
    S.WON: {S.RETURNED},  # a buyer can still return a sold lead
    S.LOST: {S.WORKING, S.RETURNED},  # reopened when the person comes back
    S.RETURNED: set(),
}


def validate_status_change(
    *, lead: Lead, status: str, reason: str = "", sale_amount: Decimal | None = None, amount_optional: bool = False
) -> None:
    """Raise if the change is not allowed or lacks what it needs (forms call this to show errors).
    `amount_optional`: a sale an advertiser reports may come without its amount."""
    if status not in ALLOWED_TRANSITIONS.get(lead.status, set()):
        raise Conflict(f"A {lead.get_status_display().lower()} lead cannot become {LeadStatus(status).label.lower()}.")
    if status == S.WON and not amount_optional and (sale_amount is None or sale_amount <= 0):
        raise InvalidInput("A won lead needs the sale amount.", extra={"sale_amount": ["Enter the sale amount."]})
    if status in (S.LOST, S.RETURNED) and not reason.strip():
        raise InvalidInput(
            f"Say why the lead is {LeadStatus(status).label.lower()}.", extra={"reason": ["Give a reason."]}
        )


@transaction.atomic
def lead_set_status(
    *,
    lead: Lead,
    status: str,
    actor: User | None,
    reason: str = "",
    sale_amount: Decimal | None = None,
    sale_currency: str = "",
    sale_reported_by: int | None = None,
) -> Lead:
    """`sale_reported_by`: the advertiser whose report won the lead, who owes the sale's commission
    (the offer's advertiser when no advertiser reported it). An advertiser's report may leave out the
    amount (a tracker that sends none, or 0): the commission is then the offer's payout per sale."""
    lead = Lead.objects.select_for_update(of=("self",)).select_related("offer").get(pk=lead.pk)
    reported = sale_reported_by is not None
    validate_status_change(lead=lead, status=status, reason=reason, sale_amount=sale_amount, amount_optional=reported)
    reason = reason.strip()
    fields = ["status", "status_reason", "updated_at"]
    if status == S.WON:
        if reported and not sale_amount:
            sale_amount, sale_currency = lead.offer.payout_per_sale, lead.offer.currency
        lead.sale_amount = sale_amount
        lead.sale_currency = (sale_currency or lead.offer.currency).upper()
        lead.converted_at = timezone.now()
        fields += ["sale_amount", "sale_currency", "converted_at"]
    if status == S.CONTACTED and lead.first_contacted_at is None:
        lead.first_contacted_at = timezone.now()
        fields.append("first_contacted_at")
    previous = lead.status
    lead.status, lead.status_reason = status, reason
    lead.save(update_fields=fields)
    data = {"from": previous, "to": status, "reason": reason}
    if status == S.WON:
        data.update({"sale_amount": f"{lead.sale_amount:.2f}", "currency": lead.sale_currency})
    LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.STATUS, actor=actor, data=data)
    lead_status_changed.send(sender=Lead, lead=lead, previous=previous)
    # Outside the offer's return window staff may still mark a lead returned, but nothing is reversed:
    # the source's and the supplier's payouts stand, so neither is told of a reversal. (Asked before
    # the ledger is, so a return at the window's last moment is reversed and told, or neither.)
    refunded = status != S.RETURNED or timezone.now() <= return_deadline(lead)
    if status == S.WON:
        ledger_post_sale_commission(lead=lead, advertiser_id=sale_reported_by)
    elif status == S.RETURNED and refunded:
        ledger_post_return(lead=lead)
    if status in POSTBACK_ON_STATUS and refunded:
        postback_enqueue(lead=lead, event=POSTBACK_ON_STATUS[status])
    if status == S.RETURNED and refunded:
        # Reported back to the supplier that sent it, so its validity rate and billing follow.
        partner_notify(
            lead=lead,
            event=PartnerNotification.Event.LEAD_RETURNED,
            data={
                "id": str(lead.public_id),
                "status": status,
                "reason": reason,
                "returned_at": timezone.now().isoformat(),
            },
        )
    return lead


@transaction.atomic
def lead_add_note(*, lead: Lead, author: User | None, body: str) -> LeadNote:
    body = body.strip()
    if not body:
        raise InvalidInput("A note needs some text.")
    note = LeadNote.objects.create(lead=lead, author=author, body=body)
    LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.NOTE, actor=author, data={"note": body[:500]})
    return note


@transaction.atomic
def lead_log_call(*, lead: Lead, rep: User | None, outcome: str, duration_seconds: int = 0, notes: str = "") -> CallLog:
    """Log a call; the first call also stops the speed-to-lead clock and marks a new lead contacted."""
    call = CallLog.objects.create(lead=lead, rep=rep, outcome=outcome, duration_seconds=duration_seconds, notes=notes)
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.CALL,
        actor=rep,
        data={"outcome": outcome, "duration_seconds": duration_seconds, "notes": notes[:500]},
    )
    Lead.objects.filter(pk=lead.pk, first_contacted_at__isnull=True).update(first_contacted_at=call.called_at)
    if Lead.objects.filter(pk=lead.pk, status=S.NEW).exists():
        lead_set_status(lead=lead, status=S.CONTACTED, actor=rep, reason="call logged")
    return call

"""What buyers report back about leads: contacted, converted, returned (or accepted, by postback)."""

import hashlib
import uuid
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import Advertiser
from leadcrm.errors import Conflict, InvalidInput, NotFound

from ..models import Lead, LeadEvent, LeadOutcome, LeadStatus, LedgerEntry, Partner
from .ledger import kept_by_other_buyers, ledger_post_buyer_commission, ledger_post_return, return_deadline
from .workflow import lead_set_status


def lead_record_outcome(
    *,
    lead: Lead,
    partner: Partner | None,
    kind: str,
    external_reference: str = "",
    sale_amount: Decimal | None = None,
    currency: str = "",
    return_reason: str = "",
    note: str = "",
    user: User | None = None,
    advertiser: Advertiser | None = None,
) -> tuple[LeadOutcome, bool]:
    """Record the outcome and apply it to the lead; (outcome, created).

    Who reports it is recorded with it (LeadOutcome.reported_by): a buyer's API key (`partner`),
    a staff user (`user`), an advertiser's postback (`advertiser`), or, given none, our own code.

    The same external reference from the same partner returns the first outcome and changes
    nothing, so buyers can safely send a report again.
    """
    if sum(reporter is not None for reporter in (partner, user, advertiser)) > 1:
        raise ValueError("An outcome has one reporter: a partner, a staff user or an advertiser")
    if external_reference:
        earlier = LeadOutcome.objects.filter(partner=partner, external_reference=external_reference).first()
        if earlier is not None:
            if earlier.lead_id != lead.pk or earlier.kind != kind:
                raise Conflict(f"External reference {external_reference!r} was already used for another outcome.")
            return earlier, False
    try:
        with transaction.atomic():
            outcome = _apply(
                lead, kind, external_reference, sale_amount, currency, return_reason, note, partner, user, advertiser
            )
    except IntegrityError:
        # The same report arrived twice at once; the other request recorded it.
        earlier = LeadOutcome.objects.filter(partner=partner, external_reference=external_reference).first()
        if earlier is None:
            raise
        return earlier, False
    return outcome, True


def _apply(
    lead: Lead,
    kind: str,
    external_reference: str,
    sale_amount: Decimal | None,
    currency: str,
    return_reason: str,
    note: str,
    partner: Partner | None,
    user: User | None,
    advertiser: Advertiser | None,
) -> LeadOutcome:
    lead = Lead.objects.select_for_update(of=("self",)).select_related("offer").get(pk=lead.pk)
    reported_by, by = _reporter(partner, user, advertiser)
    # The advertiser a buyer's key or a postback speaks for: its sale's commission is its own to pay,
    # and on a lead sold to several buyers its return is its own.
    reporter_advertiser_id = partner.advertiser_id if partner is not None else advertiser.pk if advertiser else None
    kept_by_others = False
    other_sale: list[LedgerEntry] = []
    actor_note, actor = f"reported by {by}", user  # a staff user's report is theirs on the timeline too
    if kind == LeadOutcome.Kind.CONTACTED:
        if lead.status == LeadStatus.NEW:
            lead_set_status(lead=lead, status=LeadStatus.CONTACTED, actor=actor, reason=actor_note)
    elif kind == LeadOutcome.Kind.CONVERTED:
        if lead.status == LeadStatus.WON and reporter_advertiser_id is not None:
            # A lead several advertisers bought is won once; each buyer's sale is its own commission.
            other_sale = ledger_post_buyer_commission(
                lead=lead, advertiser_id=reporter_advertiser_id, amount=sale_amount, currency=currency
            )
        elif lead.status != LeadStatus.WON:
            lead_set_status(
                lead=lead,
                status=LeadStatus.WON,
                actor=actor,
                reason=actor_note,
                sale_amount=sale_amount,
                sale_currency=currency,
                sale_reported_by=reporter_advertiser_id,
            )
    elif kind == LeadOutcome.Kind.RETURNED:
        if return_reason not in LeadOutcome.ReturnReason.values:
            raise InvalidInput(
                "Give a return reason.", extra={"reason": [f"One of {', '.join(LeadOutcome.ReturnReason.values)}."]}
            )
        deadline = return_deadline(lead)
        if timezone.now() > deadline:
            raise InvalidInput(
                f"The return window of this offer ({lead.offer.return_window_days} days) ended on "
                f"{timezone.localtime(deadline):%Y-%m-%d %H:%M %Z}; the lead can no longer be returned.",
                extra={"reason": ["Outside the return window."]},
            )
        kept_by_others = reporter_advertiser_id is not None and kept_by_other_buyers(
            lead=lead, advertiser_id=reporter_advertiser_id
        )
        if kept_by_others:
            # Only this buyer's purchase is undone: the lead stays with the others, as does its payout.
            ledger_post_return(lead=lead, advertiser_id=reporter_advertiser_id)
        elif lead.status != LeadStatus.RETURNED:
            lead_set_status(
                lead=lead, status=LeadStatus.RETURNED, actor=actor, reason=f"{return_reason}: {note}".strip(": ")
            )
            Lead.objects.filter(pk=lead.pk).update(returned_at=timezone.now())
    elif kind != LeadOutcome.Kind.ACCEPTED:
        raise InvalidInput(f"Unknown outcome {kind!r}.")
    outcome = LeadOutcome.objects.create(
        lead=lead,
        reported_by=reported_by,
        partner=partner,
        advertiser=advertiser,
        reported_by_user=user,
        kind=kind,
        external_reference=external_reference,
        sale_amount=sale_amount,
        currency=(currency or (lead.offer.currency if sale_amount is not None else "")).upper(),
        return_reason=return_reason,
        note=note[:500],
    )
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.OUTCOME,
        actor=actor,
        data={
            "outcome": kind,
            "by": by,
            "reference": external_reference,
            **({"kept_by_other_buyers": True} if kept_by_others else {}),
            **(
                {"sale_amount": f"{other_sale[0].amount:.2f}", "currency": other_sale[0].currency} if other_sale else {}
            ),
        },
    )
    return outcome


def _reporter(partner: Partner | None, user: User | None, advertiser: Advertiser | None) -> tuple[str, str]:
    """(LeadOutcome.reported_by, the reporter as the timeline and the status reason name it)."""
    if partner is not None:
        return LeadOutcome.Reporter.PARTNER_API, f"the buyer {partner}"
    if user is not None:
        return LeadOutcome.Reporter.STAFF, user.get_username()
    if advertiser is not None:
        return LeadOutcome.Reporter.ADVERTISER_POSTBACK, f"postback from {advertiser}"
    return LeadOutcome.Reporter.SYSTEM, "the system"


POSTBACK_STATUS_OUTCOMES: dict[str, str] = {
    "lead": LeadOutcome.Kind.ACCEPTED,
    "sale": LeadOutcome.Kind.CONVERTED,
    "return": LeadOutcome.Kind.RETURNED,
}


def _postback_reference(advertiser: Advertiser, reference: str) -> str:
    # Namespaced per advertiser; hashed when it would not fit the column (the reference alone may).
    namespaced = f"postback:{advertiser.pk}:{reference}"
    limit = LeadOutcome._meta.get_field("external_reference").max_length
    if limit is None or len(namespaced) <= limit:
        return namespaced
    return f"postback:{advertiser.pk}:sha256:{hashlib.sha256(reference.encode()).hexdigest()}"


def advertiser_postback_apply(
    *,
    advertiser: Advertiser,
    click_id: str = "",
    lead_public_id: uuid.UUID | str | None = None,
    status: str,
    payout: Decimal | None,
    reference: str = "",
) -> tuple[LeadOutcome, bool]:
    """A conversion the advertiser's server reports: find its lead among the advertiser's leads."""
    leads = Lead.objects.filter(offer__advertiser=advertiser, is_test=False).select_related("offer")
    lead = (
        leads.filter(public_id=lead_public_id).first()
        if lead_public_id
        # A person who sent the form twice has two leads with one click: the sale is the original's
        # (the lead that was sold), not the duplicate's.
        else leads.filter(click_id=click_id).order_by("is_duplicate", "-created_at").first()
    )
    if lead is None:
        raise NotFound("No lead of this advertiser has that click id or lead id.")
    return lead_record_outcome(
        lead=lead,
        partner=None,
        kind=POSTBACK_STATUS_OUTCOMES[status],
        external_reference=_postback_reference(advertiser, reference) if reference else "",
        sale_amount=payout if status in ("lead", "sale") else None,
        return_reason=LeadOutcome.ReturnReason.OTHER if status == "return" else "",
        note="advertiser postback",
        advertiser=advertiser,
    )

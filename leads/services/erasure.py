"""Erasing a person's data from a lead on their request (right to erasure)."""

import re
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Click

from ..models import (
    CallLog,
    Delivery,
    DeliveryAttempt,
    Lead,
    LeadEvent,
    LeadNote,
    LeadOutcome,
    OutboxEntry,
    PartnerNotification,
)
from ..signals import lead_erased
from .consent import consent_certificates_erase
from .outbox import follow_up_kinds

# What identifies the person, blanked. What the lead counts for stays: campaign, source, offer,
# country, device, judgement, status and money, so reports and invoices stay true.
PERSONAL_FIELDS: dict[str, Any] = {
    "email": "",
    "phone": "",
    "first_name": "",
    "last_name": "",
    "company": "",
    "zip_code": "",
    "message": "",
    "answers": {},
    "raw_data": {},
    "ip": None,
    "user_agent": "",
    "consent_ip": None,
    "status_reason": "",
}
# third_party_consent_id stays: it is the supplier's proof of consent at TrustedForm or Jornaya, an id
# that names no one here, and buyers may still ask for it on a lead they paid for.
# Free text in a timeline event (notes, call notes, reasons typed or echoed back): dropped.
_EVENT_TEXT_KEYS = ("note", "notes", "reason", "body", "message")
_ERASED = "erased on request"


def _reason_code(reason: str) -> str:
    """A judgement's reason without the value it quotes: "invalid_email: <address>" -> "invalid_email",
    "budget >= 1000 (was 500)" -> "budget >= 1000"."""
    return re.sub(r" \(was .*\)$", "", reason.split(":", 1)[0] if ": " in reason else reason)


def _scrubbed(data: dict[str, Any]) -> dict[str, Any]:
    data = {key: value for key, value in data.items() if key not in _EVENT_TEXT_KEYS}
    if isinstance(data.get("reasons"), list):
        data["reasons"] = [_reason_code(str(reason)) for reason in data["reasons"]]
    return data


def _scrub_data(rows: QuerySet[Any]) -> None:
    """Drop the free text from the `data` of these rows, in one UPDATE for those that had some."""
    changed = []
    for row in rows.only("data"):
        if (scrubbed := _scrubbed(row.data)) != row.data:
            row.data = scrubbed
            changed.append(row)
    rows.model.objects.bulk_update(changed, ["data"])


def same_person_leads(leads: Iterable[Lead]) -> list[Lead]:
    """The given leads and every other lead with one of their email addresses or phone numbers (one
    query): a person's request covers all we hold about them, not only the row staff picked."""
    leads = list(leads)
    emails = {lead.email for lead in leads if lead.email}
    phones = {lead.phone for lead in leads if lead.phone}
    found = Q(pk__in=[lead.pk for lead in leads]) | Q(email__in=emails) | Q(phone__in=phones)
    return list(Lead.objects.filter(found, erased_at__isnull=True).order_by("pk"))


def lead_erase(*, lead: Lead, actor: User | None = None) -> bool:
    """Blank the person's data on the lead and everywhere we keep a copy, in one transaction; the
    lead stays, counted, marked erased. False when it was erased already."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        if lead.erased_at is not None:
            return False
        for name, blank in PERSONAL_FIELDS.items():
            setattr(lead, name, blank)
        lead.validity_reasons = [_reason_code(reason) for reason in lead.validity_reasons]
        lead.qualification_reasons = [_reason_code(reason) for reason in lead.qualification_reasons]
        lead.erased_at = timezone.now()
        lead.save(
            update_fields=[*PERSONAL_FIELDS, "validity_reasons", "qualification_reasons", "erased_at", "updated_at"]
        )
        # The consent certificate keeps its text, times and digests: it still verifies, and still
        # proves what the form showed, but no longer from which address (leads/services/consent.py).
        consent_certificates_erase(lead=lead)
        if lead.tracked_click_id:
            Click.objects.filter(pk=lead.tracked_click_id).update(ip=None, user_agent="", referrer="")
        LeadNote.objects.filter(lead=lead).update(body="(erased)")
        CallLog.objects.filter(lead=lead).update(notes="")
        LeadOutcome.objects.filter(lead=lead).update(note="")
        _scrub_data(LeadEvent.objects.filter(lead=lead))
        # What buyers wrote back may quote the lead.
        DeliveryAttempt.objects.filter(Q(delivery__lead=lead) | Q(notification__lead=lead)).update(
            response_excerpt="", error=""
        )
        Delivery.objects.filter(lead=lead).exclude(reason="").update(reason=_ERASED)
        # Not yet sold: never will be, and no longer counted against a buyer's cap.
        Delivery.objects.filter(lead=lead, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED, reason=f"not sent: {_ERASED}", finished_at=timezone.now()
        )
        _scrub_data(PartnerNotification.objects.filter(lead=lead))
        # Processing too: a worker holding one loses its claim and its result is dropped.
        OutboxEntry.objects.filter(
            lead=lead,
            # Follow-ups that would send the person's data somewhere. Postbacks and supplier
            # notifications carry only ids, payouts and (blanked) reasons, and still go: they settle money.
            kind__in=[kind.name for kind in follow_up_kinds() if kind.sends_personal_data],
            status__in=(OutboxEntry.Status.PENDING, OutboxEntry.Status.PROCESSING, OutboxEntry.Status.FAILED),
        ).update(
            status=OutboxEntry.Status.DONE,
            claimed_until=None,
            last_error="not sent: the lead's personal data was erased",
        )
        LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.ERASED, actor=actor)
        lead_erased.send(sender=Lead, lead=lead)
    return True

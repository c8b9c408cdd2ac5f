"""Erasing a person's data from a lead on their request (right to erasure)."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import CallLog, DeliveryAttempt, Lead, LeadEvent, LeadNote, OutboxEntry
from ..signals import lead_erased

# What identifies the person, blanked. What the lead counts for stays: campaign, source, offer,
# country, device, judgement, status and money, so reports and invoices stay true.
PERSONAL_FIELDS = {
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
# Follow-ups that would send the person's data somewhere; postbacks carry only click ids and payouts.
_UNSENT_KINDS = (
    OutboxEntry.Kind.DELIVERY,
    OutboxEntry.Kind.PARTNER_NOTIFICATION,
    OutboxEntry.Kind.NURTURE_EMAIL,
    OutboxEntry.Kind.NURTURE_WEBHOOK,
)


def lead_erase(*, lead: Lead, actor=None) -> bool:
    """Blank the person's data on the lead and everywhere we keep a copy, in one transaction; the
    lead stays, counted, marked erased. False when it was erased already."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        if lead.erased_at is not None:
            return False
        for name, blank in PERSONAL_FIELDS.items():
            setattr(lead, name, blank)
        lead.erased_at = timezone.now()
        lead.save(update_fields=[*PERSONAL_FIELDS, "erased_at", "updated_at"])
        LeadNote.objects.filter(lead=lead).update(body="(erased)")
        CallLog.objects.filter(lead=lead).update(notes="")
        # Buyers' answers may echo the lead back.
        DeliveryAttempt.objects.filter(Q(delivery__lead=lead) | Q(notification__lead=lead)).update(response_excerpt="")
        OutboxEntry.objects.filter(
            lead=lead, kind__in=_UNSENT_KINDS, status__in=(OutboxEntry.Status.PENDING, OutboxEntry.Status.FAILED)
        ).update(status=OutboxEntry.Status.DONE, last_error="not sent: the lead's personal data was erased")
        LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.ERASED, actor=actor)
        lead_erased.send(sender=Lead, lead=lead)
    return True

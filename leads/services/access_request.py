"""Access requests: everything we hold about one person, found by an email address or a phone number,
as one JSON-ready document.

The leads part is built here: each lead with its timeline, notes, calls, buyers' outcomes,
deliveries (with what the buyer receives and every attempt), postbacks, supplier notifications, its
tracked click and its consent certificate. Other apps add their parts without leads importing them:
nurture registers its enrollments, emails, audiences and suppression entries from its AppConfig.ready
with register_access_section().
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import models
from django.db.models import Prefetch, Q
from django.utils import timezone

from leadcrm.errors import InvalidInput

from ..models import ConsentCertificate, Delivery, DeliveryAttempt, Lead, PartnerNotification, Postback
from .delivery_payload import mapped_payload
from .normalisation import normalise_email, normalise_phone

# Kept out of the export: not the person's data but our own secrets or machinery.
_NOT_THE_PERSONS = frozenset({"visitor_key", "claim_token", "claimed_until"})


@dataclass(frozen=True)
class AccessRequest:
    """Who the request is about, spelled as intake stores it, and the leads that carry it."""

    email: str
    phone: str
    leads: list[Lead]


# name -> build(request) -> a JSON-ready value, placed under that name in the document.
ACCESS_SECTIONS: dict[str, Callable[[AccessRequest], Any]] = {}


def register_access_section(name: str, build: Callable[[AccessRequest], Any]) -> None:
    ACCESS_SECTIONS[name] = build


def person_contact(*, email: str = "", phone: str = "", country: str = "") -> tuple[str, str]:
    """(email, phone) as intake stores them: the email lowercased, the phone in E.164. InvalidInput
    when neither is given or the phone is not a valid number."""
    email = normalise_email(email or "")
    phone_e164, valid = normalise_phone(phone or "", country or "")
    if not email and not phone_e164:
        raise InvalidInput("Give an email address or a phone number.")
    if not valid:
        where = f" for {country}" if country else " (start with + and the country code, or choose the country)"
        raise InvalidInput(f"Enter a valid phone number{where}.")
    return email, phone_e164


def model_row(instance: models.Model) -> dict[str, Any]:
    """Every stored column of a row, by its column name (a relation as the id it holds)."""
    return {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname not in _NOT_THE_PERSONS
    }


def partner_call_row(instance: models.Model) -> dict[str, Any]:
    """A call to a partner's server or one of its attempts: the partner's address goes only as far as
    its path, since its query may hold that partner's key or token (not the person's data)."""
    row = model_row(instance)
    for name, value in row.items():
        if name.endswith("url") and isinstance(value, str) and value:
            parts = urlsplit(value)
            row[name] = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    return row


def rows(instances: Iterable[models.Model]) -> list[dict[str, Any]]:
    return [model_row(instance) for instance in instances]


def _calls_with_attempts(calls: Iterable[Delivery | Postback | PartnerNotification]) -> list[dict[str, Any]]:
    return [
        {**partner_call_row(call), "attempts": [partner_call_row(attempt) for attempt in call.attempt_log.all()]}
        for call in calls
    ]


def _payload_of_the_lead(lead: Lead, mapping: dict[str, Any]) -> dict[str, Any]:
    """The lead's fields as the destination's mapping sends them, without the mapping's constants
    ({"value": ...}); no mapping: the standard payload."""
    if not mapping:
        return mapped_payload(lead, mapping)
    fields = {theirs: spec for theirs, spec in mapping.items() if not (isinstance(spec, dict) and "value" in spec)}
    return mapped_payload(lead, fields) if fields else {}


def _lead_document(lead: Lead, certificates: dict[Any, ConsentCertificate]) -> dict[str, Any]:
    certificate = certificates.get(lead.consent_certificate_id)
    deliveries = []
    for delivery in lead.deliveries.all():
        deliveries.append(
            {
                **partner_call_row(delivery),
                "destination_name": delivery.destination.name,
                # Payloads are not stored: this is what the destination receives for the lead as it is now,
                # without the mapping's constants (a buyer's key sent in the body is the buyer's, not theirs).
                "payload": _payload_of_the_lead(lead, delivery.destination.field_mapping),
                "attempts": [partner_call_row(attempt) for attempt in delivery.attempt_log.all()],
            }
        )
    return {
        **model_row(lead),
        "campaign_slug": lead.campaign.slug,
        "tracked_click": model_row(lead.tracked_click) if lead.tracked_click else None,
        "consent_certificate": model_row(certificate) if certificate else None,
        "timeline": rows(lead.events.all()),
        "notes": rows(lead.notes.all()),
        "calls": rows(lead.calls.all()),
        "outcomes": rows(lead.outcomes.all()),
        "deliveries": deliveries,
        "postbacks": _calls_with_attempts(lead.postbacks.all()),
        "partner_notifications": _calls_with_attempts(lead.partner_notifications.all()),
    }


def person_leads(*, email: str, phone: str) -> list[Lead]:
    """The leads with this email or phone, with all that the export reads, in a fixed number of queries."""
    found = Q(pk__in=[])
    if email:
        found |= Q(email=email)
    if phone:
        found |= Q(phone=phone)
    attempts = Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("started_at", "id"))
    return list(
        Lead.objects.filter(found)
        .select_related("campaign", "offer", "traffic_source", "tracked_click")
        .prefetch_related(
            "events",
            "notes",
            "calls",
            "outcomes",
            Prefetch("deliveries", queryset=Delivery.objects.select_related("destination").prefetch_related(attempts)),
            Prefetch("postbacks", queryset=Postback.objects.prefetch_related(attempts)),
            Prefetch("partner_notifications", queryset=PartnerNotification.objects.prefetch_related(attempts)),
        )
        .order_by("created_at", "id")
    )


def access_request_export(*, email: str = "", phone: str = "", country: str = "") -> dict[str, Any]:
    """Everything held about the person with this email or phone (normalised as intake does)."""
    email, phone = person_contact(email=email, phone=phone, country=country)
    leads = person_leads(email=email, phone=phone)
    certificate_ids = [lead.consent_certificate_id for lead in leads if lead.consent_certificate_id]
    certificates = {row.public_id: row for row in ConsentCertificate.objects.filter(public_id__in=certificate_ids)}
    request = AccessRequest(email=email, phone=phone, leads=leads)
    return {
        "request": {"email": email, "phone": phone, "exported_at": timezone.now()},
        "leads": [_lead_document(lead, certificates) for lead in leads],
        **{name: build(request) for name, build in ACCESS_SECTIONS.items()},
    }

"""What a buyer receives: our standard lead JSON, or their field names through the mapping."""

import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from django.core.serializers.json import DjangoJSONEncoder

from ..models import DeliveryDestination, Lead
from .consent import consent_certificate_url


def lead_payload(lead: Lead) -> dict[str, Any]:
    """The standard delivery JSON (also what an empty mapping sends)."""
    values = {
        "id": str(lead.public_id),
        "created_at": lead.created_at.isoformat(),
        "email": lead.email,
        "phone": lead.phone,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "company_size": lead.company_size,
        "budget": str(lead.budget) if lead.budget is not None else None,
        "country": lead.country,
        "zip_code": lead.zip_code,
        "message": lead.message,
        "answers": lead.answers,
        "lead_type": lead.lead_type,
        "qualification": lead.qualification,
        "score": lead.score,
        "campaign": lead.campaign.slug,
        "offer": lead.offer.name,
        "traffic_source_kind": lead.traffic_source.kind,
        "click_id": lead.click_id,
        "sub_ids": lead.sub_ids,
        "consent": lead.consent,
        "consent_text": lead.consent_text,
        "consent_at": lead.consent_at.isoformat() if lead.consent_at else None,
        # Our certificate (its page verifies it) and the supplier's TrustedForm or Jornaya one, if any.
        "consent_certificate_id": str(certificate) if (certificate := lead.consent_certificate_id) else None,
        "consent_certificate_url": consent_certificate_url(certificate) if certificate else None,
        "third_party_consent_id": lead.third_party_consent_id,
        "ip": lead.ip,
        "user_agent": lead.user_agent,
    }
    return values  # keys are MAPPABLE_FIELDS, which the admin validates mappings against


def _format_phone(phone: str, style: str) -> str:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone  # not valid E.164: the buyer gets it as typed
    if style == "e164":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if style == "e164_digits":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
    if style == "national":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    if style == "international":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return str(number.national_number)  # digits: the national number alone


def _transform(value: Any, style: str) -> Any:
    if style in ("lower", "upper") and isinstance(value, str):
        return value.lower() if style == "lower" else value.upper()
    if style and isinstance(value, str) and value:
        return _format_phone(value, style)
    return value


def mapped_payload(lead: Lead, mapping: dict[str, Any]) -> dict[str, Any]:
    standard = lead_payload(lead)
    if not mapping:
        return standard
    result: dict[str, Any] = {}
    for theirs, spec in mapping.items():
        spec = {"field": spec} if isinstance(spec, str) else spec
        result[theirs] = (
            spec["value"] if "value" in spec else _transform(standard[spec["field"]], spec.get("format", ""))
        )
    return result


def _form_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder)
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def request_body(destination: DeliveryDestination, payload: dict[str, Any]) -> tuple[bytes, str]:
    """(body, content type) for an HTTP destination."""
    if destination.kind == DeliveryDestination.Kind.FORM:
        fields = {name: _form_value(value) for name, value in payload.items()}
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode(), "application/json"


def email_text(lead: Lead, payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of an email delivery: one line per field, for a sales inbox."""
    name = " ".join(filter(None, [lead.first_name, lead.last_name])) or lead.email or lead.phone
    subject = f"New {lead.get_lead_type_display().lower()} lead: {name} ({lead.offer.name})"
    width = max((len(key) for key in payload), default=0)
    lines = [f"{key.replace('_', ' ').capitalize():<{width}}  {_form_value(value)}" for key, value in payload.items()]
    return subject[:200], "\n".join(lines) + "\n"

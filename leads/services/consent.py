"""Consent certificates: written with each landing-page or quiz lead, verified against their SHA-256.

The canonical form (version 1) is the UTF-8 JSON of this object, keys sorted at every level, no
whitespace (`separators=(",", ":")`), non-ASCII characters as themselves:

    {"format": "leadcrm-consent-certificate/1",
     "id": certificate public id, "lead": the lead's public id,
     "page": {"slug", "name", "kind", "consent_version"},
     "consent": {"given": true|false, "text_sha256": SHA-256 hex of the consent text's UTF-8},
     "form_shown_at": ISO 8601 in UTC with microseconds, or null, "submitted_at": the same,
     "fields_submitted": the names, sorted,
     "visitor": {"ip_hmac": ..., "user_agent_hmac": ...}}

`sha256` is the SHA-256 hex of those bytes. The visitor's IP and user agent enter only as
HMAC-SHA256 keyed with a random key of the certificate's own (`visitor_key`), so that erasure can
drop the values and the key and the certificate still verifies: what it then proves is that the
digests are the ones written at capture, no longer whose address they were.
"""

import datetime
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from campaigns.links import absolute
from campaigns.models import LandingPage
from leadcrm.bulk import execute_soon, insert_statement

from ..models import ConsentCertificate, Lead

CANONICAL_FORMAT = "leadcrm-consent-certificate/1"


@dataclass(frozen=True)
class ConsentShown:
    """What the form showed, as the door knows it (the landing page's signed state)."""

    text: str
    version: str
    shown_at: datetime.datetime | None  # None: we cannot tell when, or whether, we showed it


@dataclass(frozen=True)
class Verification:
    matches: bool
    problems: list[str] = field(default_factory=list)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _keyed_digest(key: str, value: str) -> str:
    if not value:
        return ""
    return hmac.new(bytes.fromhex(key), value.encode("utf-8"), hashlib.sha256).hexdigest()


def _instant(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def canonical_form(certificate: ConsentCertificate, *, lead_public_id: object) -> bytes:
    """The bytes the certificate's SHA-256 is taken over (see the module's description)."""
    document: dict[str, Any] = {
        "format": CANONICAL_FORMAT,
        "id": str(certificate.public_id),
        "lead": str(lead_public_id),
        "page": {
            "slug": certificate.page_slug,
            "name": certificate.page_name,
            "kind": certificate.page_kind,
            "consent_version": certificate.consent_version,
        },
        "consent": {"given": certificate.consent_given, "text_sha256": certificate.consent_text_sha256},
        "form_shown_at": _instant(certificate.form_shown_at),
        "submitted_at": _instant(certificate.submitted_at),
        "fields_submitted": sorted(certificate.fields_submitted),
        "visitor": {"ip_hmac": certificate.ip_digest, "user_agent_hmac": certificate.user_agent_digest},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def consent_certificate_create(
    *,
    lead: Lead,
    page: LandingPage,
    shown: ConsentShown | None,
    consent_given: bool,
    fields_submitted: list[str],
    ip: str | None,
    user_agent: str,
) -> ConsentCertificate:
    """Write the certificate for a lead about to be saved (in its capture transaction, with its next
    round trip: see `leadcrm.bulk.deferred_statements`) and point the lead at it. Without what the
    form showed, the page's current consent text stands in, undated."""
    shown = shown or ConsentShown(text=page.consent_text, version=page.consent_version, shown_at=None)
    now = timezone.now()
    # As the column stores it (IPv6 compressed), so the digest is taken over what verification reads.
    ip = ConsentCertificate._meta.get_field("ip").get_prep_value(ip or None)
    visitor_key = secrets.token_hex(32)
    certificate = ConsentCertificate(
        landing_page=page,
        page_slug=page.slug,
        page_name=page.name,
        page_kind=page.kind,
        consent_version=shown.version,
        consent_text=shown.text,
        consent_text_sha256=sha256_hex(shown.text),
        consent_given=consent_given,
        form_shown_at=shown.shown_at,
        submitted_at=now,
        fields_submitted=sorted(set(fields_submitted)),
        ip=ip or None,
        user_agent=user_agent,
        visitor_key=visitor_key,
        ip_digest=_keyed_digest(visitor_key, ip or ""),
        user_agent_digest=_keyed_digest(visitor_key, user_agent),
    )
    certificate.sha256 = hashlib.sha256(canonical_form(certificate, lead_public_id=lead.public_id)).hexdigest()
    # Inserted with the capture's next round trip: the lead names it by its public id, made here, and
    # a foreign key is checked when the transaction commits.
    execute_soon(*insert_statement(ConsentCertificate, _COLUMNS, [[getattr(certificate, name) for name in _COLUMNS]]))
    lead.consent_certificate_id = certificate.public_id
    return certificate


_COLUMNS = [field.attname for field in ConsentCertificate._meta.concrete_fields if not field.primary_key]


def consent_certificate_verify(certificate: ConsentCertificate) -> Verification:
    """Does the stored certificate still match its SHA-256, its consent text and its visitor digests?"""
    problems = []
    lead = Lead.objects.filter(consent_certificate=certificate).only("public_id").first()
    if lead is None:
        problems.append("It belongs to no lead.")
    elif hashlib.sha256(canonical_form(certificate, lead_public_id=lead.public_id)).hexdigest() != certificate.sha256:
        problems.append("Its content does not match its SHA-256.")
    if sha256_hex(certificate.consent_text) != certificate.consent_text_sha256:
        problems.append("The consent text does not match its SHA-256.")
    if certificate.erased_at is None:
        key = certificate.visitor_key
        if not key or _keyed_digest(key, certificate.ip or "") != certificate.ip_digest:
            problems.append("The IP address does not match its digest.")
        elif _keyed_digest(key, certificate.user_agent) != certificate.user_agent_digest:
            problems.append("The user agent does not match its digest.")
    return Verification(matches=not problems, problems=problems)


def consent_certificates_erase(*, leads: QuerySet[Lead]) -> int:
    """Blank the visitor's IP, user agent and digest key on these leads' certificates (in the
    erasure's transaction). The digests stay in the signed form, so the certificates still verify."""
    held = leads.exclude(consent_certificate_id=None).values("consent_certificate_id")
    return ConsentCertificate.objects.filter(public_id__in=held, erased_at__isnull=True).update(
        ip=None, user_agent="", visitor_key="", erased_at=timezone.now()
    )


def consent_certificate_url(public_id: object) -> str:
    """The certificate's public page, as a buyer or an auditor opens it."""
    return absolute(reverse("consent-certificate", args=[public_id]))

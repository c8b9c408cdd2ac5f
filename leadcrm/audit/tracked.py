"""Which models django-auditlog records changes to, and what of them it may write down.

Secrets are left out (API key hashes, a destination's encrypted password). A lead's personal data is
masked, never copied: the diff says *that* the email changed, not what it was or became, so the audit
trail is not a second copy of the person that erasure would have to find (see README, "Audit trail").
Masking is by default: only the lead fields named in LEAD_FIELDS_SHOWN keep their values, so a personal
field added to Lead later is masked without anyone remembering to list it here."""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from auditlog.registry import auditlog
from django.db.models import Model

from leads.models import (
    ApiKey,
    BlockedEmailDomain,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    Partner,
    QualificationRule,
    RoutePrice,
    SupplierPayout,
)
from nurture.models import Flow, FlowStep

HIDDEN = "[hidden]"
_EMPTY = {"", "None", "{}", "[]"}

# What a lead's history may show as it was: how it was judged, worked, sold and where it came from.
LEAD_FIELDS_SHOWN = {
    "id",
    "public_id",
    "created_at",
    "door",
    "is_test",
    "partner",
    "campaign",
    "offer",
    "traffic_source",
    "landing_page",
    "country",
    "device_type",
    "os",
    "browser",
    "action",
    "lead_type",
    "validity",
    "is_duplicate",
    "duplicate_of",
    "qualification",
    "score",
    "consent",
    "consent_version",
    "consent_at",
    "status",
    "sale_amount",
    "sale_currency",
    "converted_at",
    "returned_at",
    "assigned_to",
    "assigned_at",
    "first_contacted_at",
    "next_follow_up",
    "escalated_at",
    "erased_at",
}
# Changed on every save, and the entry has its own time.
LEAD_FIELDS_LEFT_OUT = ["updated_at"]


def hidden(value: str) -> str:
    """A masked value: whether there was one, never what it was."""
    return value if value in _EMPTY else HIDDEN


def without_secrets(value: str) -> str:
    """A URL keeps its scheme, host and path (where leads go is what an auditor asks); its query,
    user and password may hold a key, so they are hidden. Anything else is hidden whole."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return hidden(value)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, HIDDEN if parts.query else "", ""))


def _lead_fields_masked() -> list[str]:
    names = {field.name for field in Lead._meta.concrete_fields}
    return sorted(names - LEAD_FIELDS_SHOWN - set(LEAD_FIELDS_LEFT_OUT))


def tracked_models() -> dict[type[Model], dict[str, Any]]:
    """Each tracked model and its auditlog options."""
    return {
        Lead: {
            "exclude_fields": LEAD_FIELDS_LEFT_OUT,
            "mask_fields": _lead_fields_masked(),
            "mask_callable": "leadcrm.audit.tracked.hidden",
        },
        Partner: {
            "m2m_fields": {"campaigns"},
            "mask_fields": ["webhook_url"],
            "mask_callable": "leadcrm.audit.tracked.without_secrets",
        },
        # The key itself is never stored; its hash is left out too. Its last use is not a change.
        ApiKey: {"exclude_fields": ["key_hash", "last_used_at"]},
        DeliveryDestination: {
            "exclude_fields": ["auth_secret_encrypted"],
            # Headers and the username may carry credentials; the URL keeps where it points.
            "mask_fields": ["url", "ping_url", "headers", "auth_username"],
            "mask_callable": "leadcrm.audit.tracked.without_secrets",
        },
        DeliveryRoute: {},
        RoutePrice: {},
        SupplierPayout: {},
        QualificationRule: {},
        BlockedEmailDomain: {},
        Flow: {"m2m_fields": {"offers", "campaigns"}},
        # Counted by an UPDATE as enrollments arrive, not edited.
        FlowStep: {"exclude_fields": ["entered"]},
    }


def register_tracked_models() -> None:
    for model, options in tracked_models().items():
        auditlog.register(model, **options)

"""Inbound ping for suppliers: the price we pay for a lead, quoted on fields that identify nobody,
before the supplier gives the lead away; and the check that a lead posted with that ping's id is
the lead that was priced.

The price is the supplier's payout on the campaign (leads.models.SupplierPayout), quoted with the
reasons the lead would earn nothing refused up front. It holds for INBOUND_PING_SECONDS for one
lead: the post claims the ping in the lead's own transaction, and the payout ledger entry books the
pinged price. A post whose ping no longer holds is refused (409) and nothing is stored: the supplier
still has its lead and was told why, so it can ping again or sell it elsewhere, as a post with a
wrong campaign gets 400 and stores nothing. Contacts are never sent in a ping, so whether we know
the person already is judged at the post (a duplicate is stored, flagged and earns nothing).
"""

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign
from leadcrm.errors import Conflict, InvalidInput

from ..models import BILLABLE, Lead, Partner, SupplierPayout, SupplierPing
from .classification import classify_lead_type
from .intake_campaigns import CAMPAIGN_ERROR, campaign_for_intake, partner_campaign_ids
from .normalisation import country_code
from .submission import (
    SUBMISSION_FIELDS,
    FieldErrors,
    FieldKind,
    Submission,
    SubmissionField,
    read_fields,
)

# Fields of the lead contract that say nothing about who the person is. A ping sends only these.
PING_FIELD_NAMES = ("action", "country", "company_size", "budget", "answers", "consent")
ZIP_PREFIX_LENGTH = 4  # a US ZIP3 or a UK outward code; a full zip code can point at a street
PING_FIELDS = (
    *(spec for spec in SUBMISSION_FIELDS if spec.name in PING_FIELD_NAMES),
    SubmissionField(
        "zip_prefix",
        FieldKind.TEXT,
        ZIP_PREFIX_LENGTH,
        help_text=f"The first characters (at most {ZIP_PREFIX_LENGTH}) of the zip code; never the full code.",
    ),
)
NOT_IN_A_PING = "Not sent in a ping: it could identify the person. Send it with the lead (POST /api/v1/leads/)."


class Refusal:
    """Why a ping gets no price: a stable code and a sentence."""

    CAMPAIGN_NOT_RUNNING = "campaign_not_running"
    NO_PAYOUT = "no_payout"
    COUNTRY_NOT_TARGETED = "country_not_targeted"
    LEAD_TYPE_NOT_ACCEPTED = "lead_type_not_accepted"
    OFFER_CAPPED = "offer_capped"


@dataclass(frozen=True)
class PingFields:
    """A ping's fields as the pipeline will read its lead: what its price depends on, and the rest."""

    values: dict[str, Any]
    country: str
    lead_type: str


def _read_ping(data: Mapping[str, Any], campaign: Campaign, errors: FieldErrors) -> PingFields:
    values = read_fields(data, PING_FIELDS, errors)
    known = {spec.name for spec in PING_FIELDS} | {"campaign"}
    contract = {spec.name for spec in SUBMISSION_FIELDS}
    for name in sorted(str(name) for name in data if name not in known):
        errors[name] = [NOT_IN_A_PING] if name in contract else ["Unknown field."]
    values["zip_prefix"] = values["zip_prefix"].upper().replace(" ", "")
    values["budget"] = str(values["budget"]) if values["budget"] is not None else None
    lead_type, _why = classify_lead_type(action=values["action"], offer=campaign.offer)
    return PingFields(values=values, country=country_code(values["country"]), lead_type=lead_type)


def _payout(partner: Partner, campaign: Campaign) -> SupplierPayout | None:
    return SupplierPayout.objects.filter(partner=partner, campaign=campaign, is_active=True).first()


def _offer_leads_today(campaign: Campaign, now: datetime.datetime) -> int:
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return Lead.objects.filter(BILLABLE, offer_id=campaign.offer_id, created_at__gte=day_start).count()


def _refusal(
    partner: Partner, campaign: Campaign, fields: PingFields, now: datetime.datetime
) -> tuple[str, str, SupplierPayout | None]:
    """(code, reason, payout): the first reason the lead would earn nothing, else ("", "", payout)."""
    offer = campaign.offer
    if not campaign.is_serving(timezone.localdate(now)) or not offer.is_active:
        return Refusal.CAMPAIGN_NOT_RUNNING, "The campaign takes no leads now (paused, ended or not started).", None
    payout = _payout(partner, campaign)
    if payout is None:
        return Refusal.NO_PAYOUT, "We pay you nothing for leads on this campaign: no payout is set up.", None
    for name, countries in (("campaign", campaign.target_countries), ("offer", offer.accepted_countries)):
        if countries and fields.country not in countries:
            said = fields.country or "no country"
            return (
                Refusal.COUNTRY_NOT_TARGETED,
                f"The {name} takes leads from {', '.join(countries)}, not {said}.",
                None,
            )
    if offer.accepted_lead_types and fields.lead_type not in offer.accepted_lead_types:
        return (
            Refusal.LEAD_TYPE_NOT_ACCEPTED,
            f"The offer takes {' and '.join(offer.accepted_lead_types)} leads; "
            f"this action makes a {fields.lead_type} one.",
            None,
        )
    if offer.daily_lead_cap is not None and _offer_leads_today(campaign, now) >= offer.daily_lead_cap:
        return Refusal.OFFER_CAPPED, f"The offer has its {offer.daily_lead_cap} leads for today.", None
    return "", "", payout


def _ping_campaign(data: Mapping[str, Any], partner: Partner) -> tuple[Campaign | None, FieldErrors]:
    slug = data.get("campaign")
    campaign = campaign_for_intake(slug) if isinstance(slug, str) and slug else None
    if campaign is not None and campaign.pk not in partner_campaign_ids(partner.pk):
        campaign = None
    if campaign is None:
        return None, {"campaign": ["This field is required."] if not slug else [CAMPAIGN_ERROR]}
    return campaign, {}


def supplier_ping(*, data: object, partner: Partner, sandbox: bool = False) -> SupplierPing:
    """Quote a price for a lead with these fields, or refuse with the reason; the ping is stored
    either way (the log of what was asked and answered). InvalidInput (400) for a body that is not
    a ping: a wrong campaign, a bad value, or a field that could identify the person."""
    if not isinstance(data, Mapping):
        raise InvalidInput("Send one ping as a JSON object.", extra={"non_field_errors": ["Expected an object."]})
    campaign, errors = _ping_campaign(data, partner)
    fields = _read_ping(data, campaign, errors) if campaign is not None else None
    if errors or campaign is None or fields is None:
        raise InvalidInput("The ping has invalid fields; no price was quoted.", extra=errors)
    now = timezone.now()
    refusal, reason, payout = _refusal(partner, campaign, fields, now)
    return SupplierPing.objects.create(
        partner=partner,
        campaign=campaign,
        is_test=sandbox,
        fields=fields.values,
        country=fields.country,
        lead_type=fields.lead_type,
        price=payout.amount if payout else None,
        currency=payout.currency if payout else "",
        basis=payout.basis if payout else "",
        refusal=refusal,
        refusal_reason=reason,
        created_at=now,
        expires_at=now + datetime.timedelta(seconds=settings.INBOUND_PING_SECONDS) if payout else now,
    )


class PingRefused(Conflict):
    """A lead posted with a ping id whose price no longer holds (HTTP 409, code ping_*)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(
            f"The ping's price does not hold: {reason} Nothing was stored.", extra={"ping_id": [reason]}, code=code
        )


def ping_for_post(
    *, ping_id: str, partner: Partner | None, campaign: Campaign, submission: Submission, sandbox: bool
) -> SupplierPing:
    """The ping a lead is posted with, if its price still holds for this lead; else PingRefused.

    It holds when it is this supplier's priced ping, unexpired and unused, for the same campaign, live
    or sandbox alike, and the lead's country and lead type (what the quote was decided on) are the
    pinged ones. Other fields (answers, zip, budget) do not change our price and may differ."""
    try:
        public_id = uuid.UUID(ping_id)
    except ValueError:
        raise InvalidInput(
            "The lead has invalid fields; nothing was stored.", extra={"ping_id": ["Not a ping id."]}
        ) from None
    ping = (
        SupplierPing.objects.select_related("lead").filter(public_id=public_id, partner=partner).first()
        if partner is not None
        else None
    )
    if ping is None:
        raise PingRefused("ping_unknown", "No ping of this supplier has this id.")
    if ping.price is None:
        raise PingRefused("ping_refused", f"The ping was refused ({ping.refusal_reason}), so it has no price.")
    if ping.lead is not None:
        raise PingRefused("ping_used", f"The ping was used already, by lead {ping.lead.public_id}.")
    if ping.expires_at <= timezone.now():
        seconds = int((ping.expires_at - ping.created_at).total_seconds())
        raise PingRefused("ping_expired", f"The ping expired at {ping.expires_at.isoformat()} (after {seconds} s).")
    if ping.campaign_id != campaign.pk:
        raise PingRefused("ping_mismatch", "The ping was for another campaign.")
    if ping.is_test != sandbox:
        raise PingRefused(
            "ping_mismatch", "The ping was made with a sandbox key and the lead with a live one, or back."
        )
    country = country_code(submission.values["country"])
    if ping.country != country:
        raise PingRefused(
            "ping_mismatch",
            f"The lead's country ({country or 'none'}) is not the pinged one ({ping.country or 'none'}).",
        )
    lead_type, _why = classify_lead_type(action=submission.values["action"], offer=campaign.offer)
    if ping.lead_type != lead_type:
        raise PingRefused("ping_mismatch", f"The lead is a {lead_type} lead; the ping was for a {ping.lead_type} one.")
    return ping


def ping_claim(*, ping: SupplierPing, lead: Lead) -> None:
    """Mark the ping used by this lead, in the lead's transaction; PingRefused if another lead took it
    first (two posts racing with one ping id: the row lock makes the second wait, then find it used)."""
    if transaction.get_autocommit():
        raise RuntimeError("ping_claim must run in the lead's transaction.")
    claimed = SupplierPing.objects.filter(pk=ping.pk, lead__isnull=True).update(lead=lead)
    if not claimed:
        raise PingRefused("ping_used", "The ping was used already, by another lead posted at the same time.")
    ping.lead = lead


PING_KEPT_DAYS = 7  # unused pings; a ping a lead used stays as long as the lead (it is its price)


def supplier_pings_purge(*, batch: int = 10000) -> int:
    """Delete pings no lead used that expired more than PING_KEPT_DAYS ago, in batches; returns how many."""
    cutoff = timezone.now() - datetime.timedelta(days=PING_KEPT_DAYS)
    deleted = 0
    while True:
        ids = list(
            SupplierPing.objects.filter(lead__isnull=True, expires_at__lt=cutoff).values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        deleted += SupplierPing.objects.filter(pk__in=ids, lead__isnull=True).delete()[0]

"""The API door to the lead pipeline: which campaign a caller may post to, and field errors."""

import hashlib
from collections.abc import Mapping

from django.contrib.auth.models import User

from leadcrm.errors import InvalidInput

from ..models import Door, Lead, Partner
from .capture import CaptureContext, CaptureResult, lead_capture
from .inbound_ping import PingRefused, ping_for_post
from .intake_campaigns import CAMPAIGN_ERROR, campaign_for_intake, partner_campaign_ids
from .submission import SubmissionError, parse_submission

__all__ = ["CAMPAIGN_ERROR", "CAMPAIGN_HELP", "api_lead_submit", "campaign_for_intake", "partner_campaign_ids"]
CAMPAIGN_HELP = "The slug of a campaign this key may post to (GET /api/v1/campaigns/ lists them)."


def api_lead_submit(
    *,
    data: object,
    partner: Partner | None,
    sandbox: bool = False,
    actor: User | None = None,
    idempotency_key: str = "",
) -> CaptureResult:
    """Check the submission's shape and campaign (400 with field errors), then run the pipeline.

    Partners may post only to their campaigns; staff (partner None) to any campaign. A partner's
    lead keeps `idempotency_key` (the request's key that leads.services.idempotency hands over),
    so even a lost response never makes a second lead. With a `ping_id` the lead is bought at that
    ping's price, or refused (PingRefused, 409) with nothing stored if the price no longer holds.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("Send one lead as a JSON object.", extra={"non_field_errors": ["Expected an object."]})
    slug = data.get("campaign")
    campaign = campaign_for_intake(slug) if isinstance(slug, str) and slug else None
    if campaign is not None and partner is not None and campaign.pk not in partner_campaign_ids(partner.pk):
        campaign = None
    errors: dict[str, list[str]] = {}
    if campaign is None:
        errors["campaign"] = ["This field is required."] if not slug else [CAMPAIGN_ERROR]
    try:
        submission = parse_submission(data, door_fields={"campaign"})
    except SubmissionError as error:
        errors.update(error.errors)
    if errors or campaign is None:  # a missing campaign is in errors already; said again for its type
        raise InvalidInput("The lead has invalid fields; nothing was stored.", extra=errors)
    # Hashed: the lead's column holds 200 characters, and so may the partner's key alone.
    lead_key = (
        f"api:{partner.pk}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
        if partner and idempotency_key
        else None
    )
    ping = None
    if submission.values["ping_id"]:
        try:
            ping = ping_for_post(
                ping_id=submission.values["ping_id"],
                partner=partner,
                campaign=campaign,
                submission=submission,
                sandbox=sandbox,
            )
        except PingRefused:
            # The same request sent again after its answer was lost (or forgotten after a day): its lead
            # used the ping, and is the answer, not a refusal that says nothing was stored.
            earlier = Lead.objects.filter(idempotency_key=lead_key).first() if lead_key else None
            if earlier is None:
                raise
            return CaptureResult(lead=earlier, created=False)
    context = CaptureContext(
        door=Door.API, partner=partner, is_test=sandbox, actor=actor, idempotency_key=lead_key, ping=ping
    )
    return lead_capture(campaign=campaign, submission=submission, context=context)

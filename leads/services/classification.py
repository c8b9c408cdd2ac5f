"""Step 5 of the pipeline: soft or hard lead, from what the person did."""

from campaigns.models import LeadType, Offer

# The seed article's examples; offers override with lead_type_overrides.
ACTION_LEAD_TYPES = {
    "newsletter": LeadType.SOFT,
    "subscribe": LeadType.SOFT,
    "signup": LeadType.SOFT,
    "survey": LeadType.SOFT,
    "quiz": LeadType.SOFT,
    "webinar": LeadType.SOFT,
    "download": LeadType.SOFT,
    "quote": LeadType.HARD,
    "demo": LeadType.HARD,
    "pricing": LeadType.HARD,
    "call": LeadType.HARD,
    "call_booking": LeadType.HARD,
    "contact": LeadType.HARD,
    "trial": LeadType.HARD,
    "consultation": LeadType.HARD,
}


def classify_lead_type(*, action: str, offer: Offer) -> tuple[str, str]:
    """(lead type, why) for the action; unknown actions count as soft, the cautious choice."""
    action = action.strip().lower()
    overrides = offer.lead_type_overrides or {}
    if action in overrides:
        return overrides[action], f"offer override for {action!r}"
    if action in ACTION_LEAD_TYPES:
        return str(ACTION_LEAD_TYPES[action]), f"standard mapping for {action!r}"
    return str(LeadType.SOFT), f"unknown action {action!r}, treated as soft"

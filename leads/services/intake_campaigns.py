"""Which campaign an API caller (a lead's post, a supplier's ping) may send to, kept per process."""

from campaigns.models import Campaign
from leadcrm.config_cache import cached

from ..models import Partner

CAMPAIGN_ERROR = "Unknown campaign, or one this key may not post to."


def campaign_for_intake(slug: str) -> Campaign | None:
    """The campaign with what capture reads of it (offer, source, the offer's rules), per process."""

    def load() -> Campaign | None:
        campaigns = Campaign.objects.select_related("offer", "traffic_source")
        return campaigns.prefetch_related("offer__qualification_rules").filter(slug=slug).first()

    # An unknown slug is not kept: a caller could send endless made-up ones.
    return cached("campaign-by-slug", slug, load, keep=lambda campaign: campaign is not None)


def partner_campaign_ids(partner_id: int) -> frozenset[int]:
    return cached(
        "partner-campaigns",
        partner_id,
        lambda: frozenset(
            Partner.campaigns.through.objects.filter(partner_id=partner_id).values_list("campaign_id", flat=True)
        ),
    )

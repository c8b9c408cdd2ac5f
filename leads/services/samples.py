"""A made-up lead for previews and tests from the admin: never saved, marked test."""

import uuid

from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource

from ..models import Lead


def sample_lead(*, advertiser: Advertiser | None = None, offer: Offer | None = None) -> Lead:
    """An unsaved lead with made-up contact details, on the given offer or one of the advertiser's."""
    if offer is None:
        offers = Offer.objects.filter(advertiser=advertiser) if advertiser else Offer.objects.all()
        offer = offers.first() or Offer(name="Test offer", advertiser=advertiser)
    campaign = Campaign.objects.filter(offer=offer).select_related("traffic_source").first() if offer.pk else None
    now = timezone.now()
    return Lead(
        public_id=uuid.uuid4(),
        created_at=now,
        door="api",
        is_test=True,
        campaign=campaign or Campaign(name="Test campaign", slug="test-campaign", offer=offer),
        offer=offer,
        traffic_source=campaign.traffic_source if campaign else TrafficSource(name="Test", kind="native"),
        email="test.lead@example.com",
        phone="+16505551212",
        first_name="Test",
        last_name="Lead",
        company="Example Inc",
        country="US",
        lead_type="hard",
        validity="valid",
        qualification="qualified",
        score=80,
        action="quote",
        consent=True,
        consent_text="Test consent",
        consent_at=now,
        answers={"test": "yes"},
    )

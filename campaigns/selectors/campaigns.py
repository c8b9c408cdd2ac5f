"""Reads that compute: the campaign behind a tracking link."""

from django.db.models import (
    OuterRef,
    Subquery,
)

from ..models import Campaign, LandingPage


def campaign_for_tracking(slug: str) -> Campaign | None:
    """The campaign behind a tracking link, with its source and first landing page in one query."""
    first_page = (
        LandingPage.objects.filter(campaign=OuterRef("pk"), is_active=True)
        .order_by("position", "id")
        .values("slug")[:1]
    )
    return (
        Campaign.objects.select_related("traffic_source")
        .annotate(first_landing_slug=Subquery(first_page))
        .filter(slug=slug)
        .first()
    )

"""A campaign's absolute links: the tracking URL a media buyer pastes into the traffic source, and
the landing and pre-lander pages it leads to. SITE_URL is the site's public address."""

from django.conf import settings
from django.urls import reverse

from .models import Campaign, LandingPage


def absolute(path_or_url: str) -> str:
    """An address as a browser outside this site reaches it; absolute URLs stay as they are."""
    if path_or_url.startswith(("http://", "https://")):
        return path_or_url
    return f"{settings.SITE_URL}{path_or_url}"


def tracking_url(campaign: Campaign) -> str:
    """/c/<slug>/ with the source's click id and sub id macros, braces left for the source to fill."""
    source = campaign.traffic_source
    macros = source.tracking_macros()
    params = [f"{source.click_id_param}={macros.pop('click_id', '{click_id}')}"]
    params += [f"{name}={macro}" for name, macro in macros.items()]
    return absolute(reverse("track-click", args=[campaign.slug])) + "?" + "&".join(params)


def landing_page_urls(campaign: Campaign) -> list[tuple[LandingPage, str]]:
    """Each of the campaign's pages with its absolute address, the one that gets the clicks first."""
    pages = campaign.landing_pages.order_by("-is_active", "position", "id")
    return [(page, absolute(page.get_absolute_url())) for page in pages]

from django.http import Http404, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from leadcrm.config_cache import cached
from leadcrm.links import with_query

from .selectors import campaign_for_tracking
from .services import click_record
from .visitor import client_ip, request_country


@never_cache
@require_safe
def track_click(request, slug: str):
    """GET /c/<slug>/: record the click, then send the visitor on to the landing page."""
    # Per process until campaigns change (campaigns/receivers.py): a click is then its insert alone.
    # An unknown slug is not kept: anyone can ask for endless made-up ones.
    campaign = cached(
        "campaign-for-tracking", slug, lambda: campaign_for_tracking(slug), keep=lambda campaign: campaign is not None
    )
    destination = campaign.landing_destination() if campaign and campaign.is_serving() else ""
    if campaign is None or not destination:
        raise Http404("This campaign is not running.")
    if request.method == "HEAD":
        # Link checkers and ad platforms' URL validators ask with HEAD: they learn where it goes, and
        # are no visitor, so no click is counted.
        return HttpResponseRedirect(destination)
    click = click_record(
        campaign=campaign,
        params=request.GET,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        country=request_country(request, fallback=request.GET.get("country", "")),
        referrer=request.headers.get("Referer", ""),
    )
    return HttpResponseRedirect(with_query(destination, click_id=click.click_id))

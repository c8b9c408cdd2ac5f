"""The floors of the HTTP benchmarks, served beside the project by the same gunicorn: each does only
a request's own work (parse, insert one row, answer) through the same middleware. Like the project,
which keeps configuration per process (leadcrm.config_cache), they read a campaign once per process."""

import json
from functools import cache
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from unfold.sites import UnfoldAdminSite

from campaigns.models import Campaign, Click, LandingPage
from leads.models import Door, Lead


@cache
def _campaign(slug: str) -> Campaign:
    return Campaign.objects.get(slug=slug)


@cache
def _landing_page(slug: str) -> LandingPage:
    return LandingPage.objects.select_related("campaign").get(slug=slug)


def _lead(campaign: Campaign, door: str, data) -> Lead:
    return Lead(
        door=door,
        campaign_id=campaign.pk,
        offer_id=campaign.offer_id,
        traffic_source_id=campaign.traffic_source_id,
        email=data["email"].lower(),
        phone=data["phone"],
        first_name=data["first_name"],
        last_name=data["last_name"],
        country=data["country"],
        action=data.get("action", ""),
        lead_type="hard",
        validity="valid",
        qualification="qualified",
    )


@csrf_exempt
def floor_insert(request):
    """The API's floor: parse the same JSON and insert one row, with no checks, pipeline or auth."""
    data = json.loads(request.body)
    lead = _lead(_campaign(data["campaign"]), Door.API, data)
    lead.save(force_insert=True)
    return JsonResponse({"id": str(lead.public_id)}, status=201)


@csrf_exempt
def floor_batch_insert(request):
    """The batch API's floor: parse the same JSON and insert its rows in one statement."""
    data = json.loads(request.body)["leads"]
    leads = Lead.objects.bulk_create(_lead(_campaign(item["campaign"]), Door.API, item) for item in data)
    return JsonResponse({"ids": [str(lead.public_id) for lead in leads]}, status=201)


def floor_form_insert(request, slug: str):
    """A landing form's floor: the posted fields (CSRF-checked, as any Django form post) inserted as
    one row, then the redirect to the thank-you page."""
    page = _landing_page(slug)
    _lead(page.campaign, Door.LANDING_PAGE, request.POST).save(force_insert=True)
    return HttpResponseRedirect(f"/l/{slug}/thanks/")


def floor_click(request, slug: str):
    """The click's floor: insert the click's row as given (no user-agent parse, no targeting) and
    redirect to the landing page with its id."""
    campaign = _campaign(slug)
    click = Click.objects.create(
        campaign_id=campaign.pk,
        traffic_source_id=campaign.traffic_source_id,
        offer_id=campaign.offer_id,
        click_id=request.GET["clickid"],
        sub_ids={name: request.GET[name] for name in ("sub1", "creative") if name in request.GET},
        ip=request.META["REMOTE_ADDR"],
        user_agent=request.headers.get("User-Agent", ""),
        country=request.headers.get("CF-IPCountry", ""),
    )
    return HttpResponseRedirect(f"{campaign.landing_url}?{urlencode({'click_id': click.click_id})}")


# The floor of the admin pages: a stock ModelAdmin of leads (default changelist, exact count), on a site
# of its own so the project's admin is untouched; the same Unfold site and templates the admin uses.
stock_admin = UnfoldAdminSite(name="stock-admin")


class StockLeadAdmin(admin.ModelAdmin):
    list_filter = ("assigned_to",)  # stock, and lets the floor show one rep's leads


stock_admin.register(Lead, StockLeadAdmin)

urlpatterns = [
    path("bench/floor/", floor_insert),
    path("bench/floor/batch/", floor_batch_insert),
    path("bench/floor/l/<slug:slug>/", floor_form_insert),
    path("bench/floor/c/<slug:slug>/", floor_click),
    path("bench/stock-admin/", stock_admin.urls),
    path("", include("leadcrm.urls")),
]

import json

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from unfold.sites import UnfoldAdminSite

from campaigns.models import Campaign
from leads.models import Door, Lead


@csrf_exempt
def floor_insert(request):
    """The floor: parse the same JSON and insert the same row, with no checks, pipeline or auth."""
    data = json.loads(request.body)
    campaign = Campaign.objects.select_related("offer").get(slug=data["campaign"])
    lead = Lead.objects.create(
        door=Door.API,
        campaign=campaign,
        offer=campaign.offer,
        traffic_source_id=campaign.traffic_source_id,
        email=data["email"].lower(),
        phone=data["phone"],
        first_name=data["first_name"],
        last_name=data["last_name"],
        country=data["country"],
        action=data["action"],
        lead_type="hard",
        validity="valid",
        qualification="qualified",
    )
    return JsonResponse({"id": str(lead.public_id)}, status=201)


# The floor of the admin pages: a stock ModelAdmin of leads (default changelist, exact count), on a site
# of its own so the project's admin is untouched; the same Unfold site and templates the admin uses.
stock_admin = UnfoldAdminSite(name="stock-admin")


class StockLeadAdmin(admin.ModelAdmin):
    list_filter = ("assigned_to",)  # stock, and lets the floor show one rep's leads


stock_admin.register(Lead, StockLeadAdmin)

urlpatterns = [
    path("bench/floor/", floor_insert),
    path("bench/stock-admin/", stock_admin.urls),
    path("", include("leadcrm.urls")),
]

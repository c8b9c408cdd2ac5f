import json

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

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
# of its own so the project's admin is untouched.
stock_admin = AdminSite(name="stock-admin")
stock_admin.register(Lead, admin.ModelAdmin)

urlpatterns = [
    path("bench/floor/", floor_insert),
    path("bench/stock-admin/", stock_admin.urls),
    path("", include("leadcrm.urls")),
]

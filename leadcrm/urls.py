from django.contrib import admin
from django.urls import include, path

from .views import healthz

admin.site.site_header = "leadcrm"
admin.site.site_title = "leadcrm"
admin.site.index_title = "Campaigns, leads and nurture"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("campaigns.urls")),
    path("", include("leads.urls")),
]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from leads.admin.access_request import access_request_view
from leads.api.views import AdvertiserPostbackView

from .views import favicon, healthz

admin.site.site_header = "leadcrm"
admin.site.site_title = "leadcrm"
admin.site.index_title = "Campaigns, leads and nurture"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico on every page that names none (landing pages, the API docs).
    path("favicon.ico", favicon),
    path("admin/reports/", include("reporting.admin_urls")),
    path("admin/access-request/", admin.site.admin_view(access_request_view), name="access-request"),
    path("admin/two-factor/", include("leadcrm.staff_login.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("leads.api.urls")),
    path("api/v1/", include("reporting.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's start-up script comes from this address too (?script), so no inline script runs.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs/swagger_ui.html"),
        name="api-docs",
    ),
    path("postback/", AdvertiserPostbackView.as_view(), name="advertiser-postback"),
    path("n/", include("nurture.urls")),
    path("", include("campaigns.urls")),
    path("", include("leads.urls")),
]

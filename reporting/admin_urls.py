"""Admin pages that are reports, not model lists: mounted under /admin/reports/ by leadcrm.urls."""

from django.contrib import admin
from django.urls import path

from . import placement_admin, report_admin

urlpatterns = [
    path("", admin.site.admin_view(report_admin.report_view), name="campaign-report"),
    path("placements/", admin.site.admin_view(placement_admin.placement_quality_view), name="placement-quality"),
    path(
        "placements/blacklist/",
        admin.site.admin_view(placement_admin.placement_blacklist_download),
        name="placement-blacklist",
    ),
]

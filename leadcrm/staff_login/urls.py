"""Mounted under /admin/two-factor/ by leadcrm.urls; admin_view lets only active staff in."""

from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", admin.site.admin_view(views.two_factor_overview), name="two-factor"),
    path("set-up/", admin.site.admin_view(views.two_factor_setup), name="two-factor-setup"),
    path("code/", admin.site.admin_view(views.two_factor_verify), name="two-factor-verify"),
    path("backup-codes/", admin.site.admin_view(views.two_factor_backup_codes), name="two-factor-backup-codes"),
    path("turn-off/", admin.site.admin_view(views.two_factor_turn_off), name="two-factor-turn-off"),
]

"""Login lockouts and staff's authenticator apps in the admin, in Unfold's look like every other page.

Axes registers its own admin classes; these keep their behaviour. Deleting a lockout lifts it; deleting
someone's authenticator app (a lost phone) removes their backup codes too, so they set up a new one at
their next login. django-otp's raw device pages (which take a key typed in) are not offered."""

from typing import Any

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from unfold.admin import ModelAdmin

from .services import second_factor_reset


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin, ModelAdmin):
    list_display = ["attempt_time", "username", "ip_address", "failures_since_start", "status", "user_agent"]
    list_filter = [axes_admin.IsLockedOutFilter, "attempt_time"]


class AuthenticatorAdmin(ModelAdmin):
    list_display = ["user", "name", "created_at", "last_used_at"]
    list_filter = ["last_used_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "name", "created_at", "last_used_at", "throttling_failure_count"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(confirmed=True).select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # staff set up their own app, which shows them the key

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        second_factor_reset(user=obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for device in queryset:
            second_factor_reset(user=device.user)


ADMINS: dict[type, type[ModelAdmin]] = {
    AccessAttempt: AccessAttemptAdmin,
    AccessLog: type("AccessLogAdmin", (axes_admin.AccessLogAdmin, ModelAdmin), {}),
    TOTPDevice: AuthenticatorAdmin,
}

for model, model_admin in ADMINS.items():
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
# Backup codes are managed with the app; axes' failure log is off (AXES_ENABLE_ACCESS_FAILURE_LOG).
for model in (StaticDevice, AccessFailureLog):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

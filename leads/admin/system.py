"""Users, groups, staff API tokens and Celery beat's schedules, shown in Unfold's look like every other admin page.

Django, DRF and django-celery-beat register their own admin classes; these keep all their behaviour and
take Unfold's forms and widgets."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as StockGroupAdmin
from django.contrib.auth.admin import UserAdmin as StockUserAdmin
from django.contrib.auth.models import Group, User
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from leadcrm.admin_secrets import secret_shown_once
from leadcrm.staff_login.tokens import staff_token_create


class UserAdmin(StockUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "last_login")


class GroupAdmin(StockGroupAdmin, ModelAdmin):
    pass


class StaffTokenAdmin(TokenAdmin, ModelAdmin):
    """DRF's token page, for tokens stored as digests: a new one is shown once, on the page after it is
    made, and the list shows whose they are, not the digests."""

    list_display = ("user", "created")
    empty_hint = "No API tokens. Add one for a staff member whose scripts call the API; it is shown once."

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw_token = staff_token_create(user=form.cleaned_data["user"])
        obj.key = token.key
        request._new_staff_token = (token, raw_token)  # shown by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        token, raw_token = request._new_staff_token
        return secret_shown_once(
            self,
            request,
            "admin/authtoken/tokenproxy/created.html",
            title="New API token",
            token=token,
            raw_token=raw_token,
        )


STOCK_ADMINS = {
    User: UserAdmin,
    Group: GroupAdmin,
    PeriodicTask: type("PeriodicTaskAdmin", (beat_admin.PeriodicTaskAdmin, ModelAdmin), {}),
    ClockedSchedule: type("ClockedScheduleAdmin", (beat_admin.ClockedScheduleAdmin, ModelAdmin), {}),
    CrontabSchedule: type("CrontabScheduleAdmin", (beat_admin.CrontabScheduleAdmin, ModelAdmin), {}),
    SolarSchedule: type("SolarScheduleAdmin", (beat_admin.SolarScheduleAdmin, ModelAdmin), {}),
    IntervalSchedule: type("IntervalScheduleAdmin", (beat_admin.IntervalScheduleAdmin, ModelAdmin), {}),
    TokenProxy: StaffTokenAdmin,
}

for model, model_admin in STOCK_ADMINS.items():
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

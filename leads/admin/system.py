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


class UserAdmin(StockUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "last_login")


class GroupAdmin(StockGroupAdmin, ModelAdmin):
    pass


STOCK_ADMINS = {
    User: UserAdmin,
    Group: GroupAdmin,
    PeriodicTask: type("PeriodicTaskAdmin", (beat_admin.PeriodicTaskAdmin, ModelAdmin), {}),
    ClockedSchedule: type("ClockedScheduleAdmin", (beat_admin.ClockedScheduleAdmin, ModelAdmin), {}),
    CrontabSchedule: type("CrontabScheduleAdmin", (beat_admin.CrontabScheduleAdmin, ModelAdmin), {}),
    SolarSchedule: type("SolarScheduleAdmin", (beat_admin.SolarScheduleAdmin, ModelAdmin), {}),
    IntervalSchedule: type("IntervalScheduleAdmin", (beat_admin.IntervalScheduleAdmin, ModelAdmin), {}),
    TokenProxy: type("TokenAdmin", (TokenAdmin, ModelAdmin), {}),
}

for model, model_admin in STOCK_ADMINS.items():
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

"""Partners and their API keys. A new key is shown once, on the page after it is created."""

from django.contrib import admin
from django.template.response import TemplateResponse

from leadcrm.admin_actions import run_for_each

from ..models import ApiKey, Partner
from ..services.partners import api_key_create, api_key_revoke


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("prefix", "name", "scopes", "is_sandbox", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on the API key page, where the full key can be shown once


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "advertiser", "rate_limit_per_minute", "is_active")
    list_filter = ("role", "is_active")
    search_fields = ("name",)
    filter_horizontal = ("campaigns",)
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "partner", "name", "scopes", "is_sandbox", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("is_sandbox", "partner")
    list_select_related = ("partner",)
    search_fields = ("prefix", "partner__name", "name")
    actions = ("revoke_keys",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("partner", "name", "scopes", "is_sandbox", "expires_at")
        return (
            "partner",
            "prefix",
            "name",
            "scopes",
            "is_sandbox",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("partner", "prefix", "is_sandbox", "revoked_at", "last_used_at", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = api_key_create(
            partner=form.cleaned_data["partner"],
            scopes=form.cleaned_data["scopes"],
            name=form.cleaned_data["name"],
            sandbox=form.cleaned_data["is_sandbox"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = key.pk
        request._new_api_key = (key, raw_key)  # shown by response_add, never stored in full

    def response_add(self, request, obj, post_url_continue=None):
        key, raw_key = request._new_api_key
        context = {
            **self.admin_site.each_context(request),
            "title": "New API key",
            "opts": self.model._meta,
            "key": key,
            "raw_key": raw_key,
        }
        response = TemplateResponse(request, "admin/leads/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        run_for_each(self, request, queryset, lambda key: api_key_revoke(key=key), "revoked")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the key's history stays

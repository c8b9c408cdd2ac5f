"""Partners and their API keys. A new key is shown once, on the page after it is created."""

from functools import partial

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path, reverse
from unfold.admin import ModelAdmin, TabularInline

from leadcrm.admin_actions import run_for_each
from leadcrm.admin_logs import ReadOnlyLogAdmin
from leadcrm.admin_secrets import secret_shown_once

from ..models import ApiKey, Partner, PartnerNotification, SupplierPayout
from ..services.notifications import notifications_resend
from ..services.partners import api_key_create, api_key_revoke
from ..services.signing import partner_retire_old_webhook_secrets, partner_rotate_webhook_secret
from .delivery import AttemptInline, SecretInline, without_query
from .money import supplier_payment_view


class ApiKeyInline(TabularInline):
    model = ApiKey
    extra = 0
    fields = ("prefix", "name", "scopes", "is_sandbox", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on the API key page, where the full key can be shown once


class PartnerSecretInline(SecretInline):
    fk_name = "partner"
    verbose_name_plural = "webhook signing secrets (shown in full once, when created)"


class SupplierPayoutInline(TabularInline):
    model = SupplierPayout
    extra = 0
    fields = ("campaign", "amount", "currency", "basis", "is_active")
    autocomplete_fields = ("campaign",)
    verbose_name_plural = "payouts per campaign (for suppliers; payable after the offer's return window)"


@admin.register(Partner)
class PartnerAdmin(ModelAdmin):
    empty_hint = (
        "No partners yet. Add the suppliers who post leads to you and the buyers who take them, then give"
        " them API keys."
    )
    list_display = ("name", "role", "advertiser", "rate_limit_per_minute", "webhook_target", "is_active")
    list_filter = ("role", "is_active")
    search_fields = ("name",)
    filter_horizontal = ("campaigns",)
    inlines = [SupplierPayoutInline, ApiKeyInline, PartnerSecretInline]
    actions = ("new_webhook_secret", "retire_old_webhook_secrets", "record_supplier_payment")

    @admin.display(description="Webhook URL")
    def webhook_target(self, partner: Partner) -> str:
        return without_query(partner.webhook_url)

    # Viewers (marketing) do not see the webhook URL's query, which may hold the partner's key, nor
    # filter by it to read it back.
    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fields
        return ["webhook_target" if field == "webhook_url" else field for field in fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is None or self.has_change_permission(request, obj):
            return super().get_readonly_fields(request, obj)
        return (*super().get_readonly_fields(request, obj), "webhook_target")

    def lookup_allowed(self, lookup, value, request):
        if lookup.startswith("webhook_url") and not self.has_change_permission(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_urls(self):
        payment = self.admin_site.admin_view(partial(supplier_payment_view, self))
        return [
            path("<int:partner_id>/payment/", payment, name="leads_partner_payment"),
            *super().get_urls(),
        ]

    @admin.action(description="Record a payment to the supplier (select one partner)", permissions=["change"])
    def record_supplier_payment(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one partner.", messages.WARNING)
            return None
        return redirect("admin:leads_partner_payment", queryset.get().pk)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.webhook_url and not obj.webhook_secrets.filter(revoked_at__isnull=True).exists():
            self.message_user(
                request,
                f"{obj} has a webhook URL but no signing secret: events are not sent until you create one "
                "(action 'New webhook signing secret').",
                messages.WARNING,
            )

    @admin.action(description="New webhook signing secret (select one partner)", permissions=["change"])
    def new_webhook_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one partner.", messages.WARNING)
            return None
        partner = queryset.get()
        return secret_shown_once(
            self,
            request,
            "admin/leads/secret_created.html",
            title="New webhook signing secret",
            owner=partner,
            secret=partner_rotate_webhook_secret(partner=partner),
            back_url=reverse("admin:leads_partner_change", args=[partner.pk]),
        )

    @admin.action(description="Retire older webhook secrets", permissions=["change"])
    def retire_old_webhook_secrets(self, request, queryset):
        retired = sum(partner_retire_old_webhook_secrets(partner=partner) for partner in queryset)
        self.message_user(request, f"{retired} older secret(s) retired.")


@admin.register(PartnerNotification)
class PartnerNotificationAdmin(ReadOnlyLogAdmin):
    list_display = ("webhook_id", "partner", "lead", "event", "status", "attempts", "last_status_code", "created_at")
    list_filter = ("status", "event", "partner")
    list_select_related = ("partner", "lead")
    actions = ("resend",)
    inlines = [AttemptInline]

    @admin.action(description="Send again", permissions=["change"])
    def resend(self, request, queryset):
        count = notifications_resend(notifications=queryset)
        self.message_user(request, f"{count} notification(s) will be sent again; sent and pending ones are left alone.")


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
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
        return secret_shown_once(
            self, request, "admin/leads/apikey/created.html", title="New API key", key=key, raw_key=raw_key
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        run_for_each(self, request, queryset, lambda key: api_key_revoke(key=key), "revoked")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the key's history stays

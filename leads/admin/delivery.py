"""Buyers' destinations and routes, the deliveries and postbacks logs, and the held queue."""

import json
import uuid
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.db.models.constants import LOOKUP_SEP
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline

from campaigns.admin import OfferListFilter
from leadcrm.admin_logs import ReadOnlyLogAdmin
from leadcrm.admin_secrets import secret_shown_once

from ..models import (
    Delivery,
    DeliveryAttempt,
    DeliveryDestination,
    DeliveryRoute,
    HeldDelivery,
    Postback,
    RoutePrice,
    WebhookSecret,
)
from ..services.delivery import (
    COUNTED,
    deliveries_redeliver,
    deliveries_release_held,
    deliveries_route_next,
    destination_set_auth_secret,
    held_deliveries,
    period_starts,
    send_lead,
)
from ..services.postbacks import postback_url, postbacks_resend
from ..services.samples import sample_lead
from ..services.signing import destination_retire_old_secrets, destination_rotate_secret


class AttemptInline(TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("started_at", "outcome", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class SecretInline(TabularInline):
    model = WebhookSecret
    extra = 0
    can_delete = False
    fields = ("prefix", "created_at", "revoked_at")
    readonly_fields = fields
    verbose_name_plural = "signing secrets (shown in full once, when created)"

    def has_add_permission(self, request, obj=None):
        return False


class RouteInline(TabularInline):
    model = DeliveryRoute
    extra = 0
    fields = (
        "offer",
        "priority",
        "weight",
        "accepted_countries",
        "accepted_lead_types",
        "hourly_cap",
        "daily_cap",
        "price_per_lead",
        "is_active",
    )
    autocomplete_fields = ("offer",)


class DestinationForm(forms.ModelForm):
    new_auth_secret = forms.CharField(
        label="Password or token",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="For basic or bearer authentication. Stored encrypted and never shown; leave empty to keep it.",
    )

    class Meta:
        model = DeliveryDestination
        fields = (
            "advertiser",
            "name",
            "kind",
            "is_active",
            "url",
            "field_mapping",
            "headers",
            "timeout_seconds",
            "follow_redirects",
            "auth",
            "auth_username",
            "accept_json_path",
            "accept_json_value",
            "reason_json_path",
            "reference_json_path",
            "email_to",
            "ping_url",
            "ping_fields",
            "ping_answer_keys",
            "bid_json_path",
            "bid_id_json_path",
            "ping_timeout_ms",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only ping/post buyers use it: a form for another kind may leave it out and keep the default.
        if "ping_timeout_ms" in self.fields:  # not on a read-only view of the page
            self.fields["ping_timeout_ms"].required = False

    def clean_ping_timeout_ms(self):
        timeout = self.cleaned_data.get("ping_timeout_ms")
        return DeliveryDestination._meta.get_field("ping_timeout_ms").default if timeout is None else timeout


def without_query(url: str) -> str:
    """A partner's URL as a viewer sees it: its query, which may hold a key, left out."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="…")) if parts.query else url


# A destination's fields that may hold a buyer's credentials: a viewer is not shown them (nor the
# mapping's constants), nor may filter by them.
CREDENTIAL_FIELDS = {"url", "ping_url", "headers", "auth_username", "field_mapping"}


@admin.register(DeliveryDestination)
class DeliveryDestinationAdmin(ModelAdmin):
    empty_hint = (
        "No buyers' destinations yet. Add where a buyer receives its leads (a webhook or an inbox), then "
        "a route that sends it leads."
    )
    form = DestinationForm
    list_display = ("name", "advertiser", "kind", "target", "is_active", "active_secrets")
    list_filter = ("kind", "is_active", "advertiser")
    list_select_related = ("advertiser",)
    search_fields = ("name", "advertiser__name", "url")
    inlines = [RouteInline, SecretInline]
    readonly_fields = ("disabled_reason", "created_at")
    change_form_template = "admin/leads/deliverydestination/change_form.html"
    fieldsets = (
        (None, {"fields": ("advertiser", "name", "kind", "is_active", "disabled_reason")}),
        ("HTTP", {"fields": ("url", "field_mapping", "headers", "timeout_seconds", "follow_redirects")}),
        ("Authentication", {"fields": ("auth", "auth_username", "new_auth_secret")}),
        (
            "The buyer's answer",
            {"fields": ("accept_json_path", "accept_json_value", "reason_json_path", "reference_json_path")},
        ),
        ("Email", {"fields": ("email_to",)}),
        (
            "Ping/post (the URL above receives the post)",
            {
                "fields": (
                    "ping_url",
                    "ping_fields",
                    "ping_answer_keys",
                    "bid_json_path",
                    "bid_id_json_path",
                    "ping_timeout_ms",
                )
            },
        ),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_secret_count=Count("secrets", filter=Q(secrets__revoked_at__isnull=True)))
            .order_by("name")  # a GROUP BY drops the model's ordering
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None or self.has_change_permission(request, obj):
            return self.fieldsets
        # Viewers (marketing) do not see what may hold a buyer's credentials: headers, the URL's query.
        return (
            (None, {"fields": ("advertiser", "name", "kind", "is_active", "disabled_reason")}),
            ("HTTP", {"fields": ("target", "mapping_without_constants", "timeout_seconds", "follow_redirects")}),
            ("The buyer's answer", {"fields": ("accept_json_path", "accept_json_value", "reason_json_path")}),
            ("Ping/post", {"fields": ("ping_fields", "ping_answer_keys", "bid_json_path", "ping_timeout_ms")}),
        )

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "target", "mapping_without_constants")

    @admin.display(description="Field mapping")
    def mapping_without_constants(self, obj):
        # A constant sent with every lead may be the buyer's key: a viewer sees that there is one.
        mapping = {
            theirs: {**spec, "value": "…"} if isinstance(spec, dict) and "value" in spec else spec
            for theirs, spec in (obj.field_mapping or {}).items()
        }
        return json.dumps(mapping, ensure_ascii=False) if mapping else "-"

    def get_search_fields(self, request):
        if self.has_change_permission(request):
            return self.search_fields
        # A search matches the URL's query: a viewer could read a key in it back, a character at a time.
        return tuple(field for field in self.search_fields if field != "url")

    def lookup_allowed(self, lookup, value, request):
        # Filters typed into the address are lookups too: none on what may hold a buyer's credentials,
        # for a viewer (who is not shown them), nor on the encrypted secret, for anyone.
        field = lookup.split(LOOKUP_SEP, 1)[0]
        if field == "auth_secret_encrypted" or (field in CREDENTIAL_FIELDS and not self.has_change_permission(request)):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="URL or inbox")
    def target(self, obj):
        if obj.kind == DeliveryDestination.Kind.EMAIL:
            return ", ".join(obj.email_to)
        return without_query(obj.url)

    @admin.display(description="Active secrets")
    def active_secrets(self, obj):
        return obj.active_secret_count

    def save_model(self, request, obj, form, change):
        if obj.is_active:
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("new_auth_secret"):
            destination_set_auth_secret(destination=obj, secret=form.cleaned_data["new_auth_secret"])

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        released = deliveries_release_held()
        if released:
            self.message_user(request, f"{released} held lead(s) will be routed again now.")

    def response_add(self, request, obj, post_url_continue=None):
        if obj.kind == DeliveryDestination.Kind.EMAIL:
            return super().response_add(request, obj, post_url_continue)
        # Deliveries are always signed: a new HTTP destination gets its first secret now, shown once.
        return self._secret_page(request, obj, destination_rotate_secret(destination=obj))

    def _secret_page(self, request, destination, raw):
        return secret_shown_once(
            self,
            request,
            "admin/leads/secret_created.html",
            title="New signing secret",
            owner=destination,
            secret=raw,
            back_url=reverse("admin:leads_deliverydestination_change", args=[destination.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="leads_destination_rotate",
            ),
            path(
                "<int:pk>/retire-secrets/",
                self.admin_site.admin_view(self.retire_secrets_view),
                name="leads_destination_retire",
            ),
            path("<int:pk>/send-test/", self.admin_site.admin_view(self.send_test_view), name="leads_destination_test"),
            *super().get_urls(),
        ]

    def rotate_secret_view(self, request, pk):
        destination = get_object_or_404(DeliveryDestination, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, destination):
            return redirect("admin:leads_deliverydestination_change", pk)
        return self._secret_page(request, destination, destination_rotate_secret(destination=destination))

    def retire_secrets_view(self, request, pk):
        destination = get_object_or_404(DeliveryDestination, pk=pk)
        if request.method == "POST" and self.has_change_permission(request, destination):
            retired = destination_retire_old_secrets(destination=destination)
            self.message_user(request, f"{retired} older secret(s) retired; only the newest signs now.")
        return redirect("admin:leads_deliverydestination_change", pk)

    def send_test_view(self, request, pk):
        destination = get_object_or_404(DeliveryDestination, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, destination):
            return redirect("admin:leads_deliverydestination_change", pk)
        sent = send_lead(
            destination=destination,
            lead=sample_lead(advertiser=destination.advertiser),
            msg_id=f"msg_test_{uuid.uuid4().hex}",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test lead sent to {destination.name}",
            "opts": self.model._meta,
            "destination": destination,
            "sent": sent,
        }
        return TemplateResponse(request, "admin/leads/deliverydestination/test_result.html", context)


class RoutePriceInline(TabularInline):
    model = RoutePrice
    extra = 0
    fields = ("country", "lead_type", "price")
    verbose_name_plural = "prices by country or lead type (the most specific match wins)"


@admin.register(DeliveryRoute)
class DeliveryRouteAdmin(ModelAdmin):
    empty_hint = (
        "No routes yet. A route sends an offer's leads to a buyer's destination, with its price, caps and schedule."
    )
    list_display = (
        "offer_name",
        "buyer",
        "priority",
        "weight",
        "price",
        "accepts",
        "hour_usage",
        "day_usage",
        "is_active",
    )
    inlines = [RoutePriceInline]
    list_filter = ("is_active", ("offer", OfferListFilter), "destination__advertiser")
    list_select_related = ("offer", "destination")
    autocomplete_fields = ("offer",)
    ordering = ("offer", "priority", "id")

    def get_queryset(self, request):
        hour, day = period_starts(timezone.now())
        counted = Q(deliveries__status__in=COUNTED)
        return (
            super()
            .get_queryset(request)
            .annotate(
                # distinct: the join with the route's prices must not multiply the deliveries.
                today=Count("deliveries", filter=counted & Q(deliveries__created_at__gte=day), distinct=True),
                this_hour=Count("deliveries", filter=counted & Q(deliveries__created_at__gte=hour), distinct=True),
                price_count=Count("prices", distinct=True),
            )
            .order_by(*DeliveryRoute._meta.ordering or ["pk"])  # a GROUP BY drops the model's ordering
        )

    @admin.display(description="Offer", ordering="offer__name")
    def offer_name(self, obj):
        return obj.offer.name

    @admin.display(description="Buyer", ordering="destination__name")
    def buyer(self, obj):
        return obj.destination.name

    @admin.display(description="Price")
    def price(self, obj):
        base = obj.price_per_lead if obj.price_per_lead is not None else obj.offer.payout_per_lead
        extra = " + by country/type" if obj.price_count else ""
        return f"{base:.2f} {obj.offer.currency}{extra}"

    @admin.display(description="Accepts")
    def accepts(self, obj):
        countries = ", ".join(obj.accepted_countries) or "all countries"
        types = ", ".join(obj.accepted_lead_types) or "all types"
        return f"{countries}; {types}"

    @admin.display(description="This hour / cap")
    def hour_usage(self, obj):
        return f"{obj.this_hour} / {obj.hourly_cap if obj.hourly_cap is not None else '∞'}"

    @admin.display(description="Today / cap")
    def day_usage(self, obj):
        return f"{obj.today} / {obj.daily_cap if obj.daily_cap is not None else '∞'}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        released = deliveries_release_held(offer_id=obj.offer_id)
        if released:
            self.message_user(request, f"{released} held lead(s) of this offer will be routed again now.")


class DestinationFilter(admin.SimpleListFilter):
    """The buyers to pick from, named with their advertiser in one query (not one per buyer)."""

    title = "buyer"
    parameter_name = "destination"

    def lookups(self, request, model_admin):
        destinations = DeliveryDestination.objects.select_related("advertiser").order_by("name")
        return [(str(destination.pk), str(destination)) for destination in destinations]

    def queryset(self, request, queryset):
        return queryset.filter(destination_id=self.value()) if (self.value() or "").isdigit() else queryset


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyLogAdmin):
    empty_hint = "Nothing delivered yet. Deliveries appear here once a route sends a lead to a buyer."
    # Status first: what the page is read for is whether the buyer took the lead.
    list_display = (
        "status",
        "lead",
        "buyer",
        "price_display",
        "attempts",
        "http_status",
        "reason",
        "created_at",
        "webhook_id",
    )
    list_filter = ("status", "destination__advertiser", DestinationFilter, ("created_at", admin.DateFieldListFilter))
    list_select_related = ("lead", "destination__advertiser")
    show_full_result_count = False
    search_fields = ("public_id", "buyer_reference", "lead__public_id")
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    actions = ("redeliver", "route_to_next_buyer")

    @admin.display(description="Buyer", ordering="destination__name")
    def buyer(self, delivery):
        return delivery.destination.name  # its advertiser is in the filter beside the list

    @admin.display(description="HTTP", ordering="last_status_code")
    def http_status(self, delivery):
        return delivery.last_status_code or "—"

    @admin.display(description="Price", ordering="price")
    def price_display(self, delivery):
        return "—" if delivery.price is None else f"{delivery.price:.2f} {delivery.currency}"

    @admin.action(description="Redeliver to the same buyer (same webhook id)", permissions=["change"])
    def redeliver(self, request, queryset):
        count, refused = deliveries_redeliver(deliveries=queryset)
        self.message_user(
            request, f"{count} delivery(ies) will be sent again; accepted and pending ones are left alone."
        )
        if refused:
            reasons = "; ".join(f"#{pk}: {why}" for pk, why in sorted(refused.items()))
            self.message_user(
                request, f"Not sent again, as the buyer would refuse them now: {reasons}.", messages.WARNING
            )

    @admin.action(description="Route to the next buyer", permissions=["change"])
    def route_to_next_buyer(self, request, queryset):
        count = deliveries_route_next(deliveries=queryset)
        self.message_user(request, f"{count} lead(s) will be offered to the next buyer that has not had them.")


@admin.register(Postback)
class PostbackAdmin(ReadOnlyLogAdmin):
    list_display = (
        "lead",
        "event",
        "payout",
        "currency",
        "status",
        "attempts",
        "last_status_code",
        "reason",
        "created_at",
    )
    list_filter = ("status", "event", "lead__traffic_source", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("lead",)
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    actions = ("resend",)
    readonly_fields = ("url",)

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "url"]

    @admin.display(description="URL")
    def url(self, obj):
        return postback_url(obj)

    @admin.action(description="Send again", permissions=["change"])
    def resend(self, request, queryset):
        count = postbacks_resend(postbacks=queryset)
        self.message_user(request, f"{count} postback(s) will be sent again; sent and pending ones are left alone.")


@admin.register(HeldDelivery)
class HeldDeliveryAdmin(ModelAdmin):
    list_display = ("lead", "offer", "held_reason", "next_attempt_at", "created_at")
    list_select_related = ("lead__offer",)
    actions = ("route_now",)

    def get_queryset(self, request):
        return held_deliveries().select_related("lead__offer")

    @admin.display(description="Offer")
    def offer(self, obj):
        return obj.lead.offer.name

    @admin.display(description="Why it waits")
    def held_reason(self, obj):
        return obj.payload.get("held", "")

    @admin.action(description="Route now", permissions=["change"])
    def route_now(self, request, queryset):
        count = deliveries_release_held(entry_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} held lead(s) will be routed now.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)  # actions only


class DeliveryInline(TabularInline):
    """On the lead page: where the lead went and what each buyer answered."""

    model = Delivery
    extra = 0
    can_delete = False
    fields = ("destination", "status", "attempts", "last_status_code", "reason", "created_at", "log")
    readonly_fields = fields
    verbose_name_plural = "deliveries to buyers"

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Attempts log")
    def log(self, obj):
        url = reverse("admin:leads_delivery_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.webhook_id)


class PostbackInline(TabularInline):
    model = Postback
    extra = 0
    can_delete = False
    fields = ("event", "payout", "currency", "status", "attempts", "last_status_code", "reason", "created_at")
    readonly_fields = fields
    verbose_name_plural = "postbacks to the traffic source"

    def has_add_permission(self, request, obj=None):
        return False

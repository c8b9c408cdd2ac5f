from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin, StackedInline, TabularInline

from leadcrm.admin_actions import run_for_each
from leadcrm.admin_secrets import secret_shown_once

from .links import landing_page_urls, tracking_url
from .metrics import campaign_metrics
from .models import (
    QUIZ_MAX_QUESTIONS,
    Advertiser,
    Campaign,
    Click,
    DailyStat,
    LandingPage,
    Offer,
    QuizQuestion,
    TrafficSource,
)
from .services import (
    advertiser_postback_token_rotate,
    campaign_activate,
    campaign_duplicate,
    campaign_pause,
    daily_stats_import,
)


def _money(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


# Spend, margin and the lead counts are the company's, shown as the reports show them: to whoever may
# see daily spend (not to sales reps, who see their own leads only).
MONEY_PERMISSION = "campaigns.view_dailystat"
MONEY_COLUMNS = ("spend", "leads", "cpl", "margin", "roi")


class CampaignChangeList(ChangeList):
    """The page's campaigns with their lifetime metrics, fetched for the whole page at once."""

    def get_results(self, request):
        super().get_results(request)
        if not request.user.has_perm(MONEY_PERMISSION):
            return
        metrics = campaign_metrics(list(self.result_list))
        for campaign in self.result_list:
            campaign.metrics = metrics.get(campaign.pk, {})


def _metric(campaign: Campaign, name: str):
    return getattr(campaign, "metrics", {}).get(name)


@admin.register(TrafficSource)
class TrafficSourceAdmin(ModelAdmin):
    empty_hint = (
        "No traffic sources yet. Add the networks you buy from (push, pop, native...), with the URL "
        "parameter each sends its click id in."
    )
    list_display = ("name", "kind", "click_id_param", "campaign_count", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)

    def get_queryset(self, request):
        # A GROUP BY drops the model's ordering; the list and the autocomplete need one.
        return super().get_queryset(request).annotate(campaign_count=Count("campaigns")).order_by("name")

    @admin.display(description="Campaigns", ordering="campaign_count")
    def campaign_count(self, source):
        return source.campaign_count


class OfferInline(TabularInline):
    model = Offer
    extra = 0
    fields = ("name", "payout_per_lead", "payout_per_sale", "currency", "daily_lead_cap", "is_active")
    show_change_link = True


@admin.register(Advertiser)
class AdvertiserAdmin(ModelAdmin):
    empty_hint = "No advertisers yet. Add the companies whose offers you sell leads to."
    list_display = ("name", "contact_name", "contact_email", "offer_count", "has_postback_token", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "contact_name", "contact_email")
    inlines = [OfferInline]
    actions = ("new_postback_token",)

    @admin.display(description="Postback token", boolean=True)
    def has_postback_token(self, advertiser):
        return bool(advertiser.postback_token_hash)

    @admin.action(
        description="Create a new postback token (shown once; the old one stops working)", permissions=["change"]
    )
    def new_postback_token(self, request, queryset):
        tokens = [(advertiser, advertiser_postback_token_rotate(advertiser=advertiser)) for advertiser in queryset]
        return secret_shown_once(
            self,
            request,
            "admin/campaigns/advertiser/postback_tokens.html",
            title="New postback tokens",
            tokens=tokens,
            postback_url=f"{settings.SITE_URL}{reverse('advertiser-postback')}",
        )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(offer_count=Count("offers")).order_by("name")

    @admin.display(description="Offers", ordering="offer_count")
    def offer_count(self, advertiser):
        return advertiser.offer_count


@admin.register(Offer)
class OfferAdmin(ModelAdmin):
    list_display = (
        "name",
        "advertiser",
        "payout_per_lead",
        "payout_per_sale",
        "currency",
        "daily_lead_cap",
        "is_active",
    )
    list_filter = ("advertiser", "currency", "sells_by_auction", "is_active")
    list_select_related = ("advertiser",)
    search_fields = ("name", "advertiser__name")
    autocomplete_fields = ("advertiser",)


class OfferListFilter(admin.RelatedFieldListFilter):
    """Filter by offer, for any list with an `offer` field: each offer is named with its advertiser,
    loaded with it (the stock filter's choices took a query per offer)."""

    def field_choices(self, field, request, model_admin):
        offers = Offer.objects.select_related("advertiser").order_by("advertiser__name", "name")
        return [(offer.pk, str(offer)) for offer in offers]


class TargetCountryFilter(admin.SimpleListFilter):
    title = "targeted country"
    parameter_name = "country"

    def lookups(self, request, model_admin):
        codes: set[str] = set()
        for countries in Campaign.objects.values_list("target_countries", flat=True):
            codes.update(countries or [])
        return [(code, code) for code in sorted(codes)]

    def queryset(self, request, queryset):
        if value := self.value():
            # Country codes are two letters, so a quoted match in the JSON text is exact.
            return queryset.filter(target_countries__icontains=f'"{value[:2]}"')
        return queryset


class LandingPageInline(StackedInline):
    model = LandingPage
    extra = 0
    show_change_link = True
    fields = (
        ("name", "slug", "kind"),
        ("position", "is_active", "action"),
        "headline",
        "fields",
        "required_fields",
        ("consent_required", "consent_version"),
        "consent_text",
        ("next_url", "thank_you_url"),
    )
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    empty_hint = (
        "No campaigns yet. Add one: pick its traffic source and offer, add a landing page, activate it, "
        "then paste its tracking link into the source."
    )
    # What a media buyer compares at a glance, all in view at 1366 px; offer and bid are on the page.
    list_display = (
        "name",
        "status",
        "source",
        "spend",
        "leads",
        "cpl",
        "margin",
        "roi",
    )
    list_filter = (
        "status",
        "traffic_source__kind",
        "traffic_source",
        "offer__advertiser",
        TargetCountryFilter,
        "bid_model",
    )
    search_fields = ("name", "slug", "offer__name", "traffic_source__name")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("traffic_source", "offer")
    inlines = [LandingPageInline]
    actions = ("activate_campaigns", "pause_campaigns", "duplicate_campaigns")
    fieldsets = (
        (None, {"fields": ("name", "slug", "status", "traffic_source", "offer", "landing_url")}),
        (
            "Bid and budget",
            {"fields": (("bid_model", "bid"), ("daily_budget", "total_budget"), ("start_date", "end_date"))},
        ),
        (
            "Targeting",
            {
                "description": "Clicks and leads from outside the targeting are kept but marked off-target.",
                "fields": (
                    "target_countries",
                    "target_device_types",
                    "target_operating_systems",
                    "target_connection_types",
                    "target_carriers",
                    "target_segments",
                ),
            },
        ),
        ("Tracking", {"fields": ("tracking_link", "page_links")}),
        (
            "Postbacks to the traffic source",
            {
                "description": "Server-to-server calls to the traffic source's postback URL template for leads "
                "with its click id.",
                "fields": (
                    "postback_events",
                    ("postback_valid_payout", "postback_qualified_payout", "postback_converted_payout"),
                    "postback_return_reversal",
                ),
            },
        ),
        (
            "Placement quality",
            {
                "description": "Placements (zones, sites, creatives) with enough leads and a validity or "
                "conversion rate below these are flagged in the placement report and its blacklist.",
                "fields": ("placement_min_leads", ("placement_min_validity_rate", "placement_min_conversion_rate")),
            },
        ),
    )
    readonly_fields = ("tracking_link", "page_links")

    def get_readonly_fields(self, request, obj=None):
        # New campaigns start as drafts; status changes go through the activate and pause actions,
        # which check that the campaign can run.
        return ("status", *self.readonly_fields)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("traffic_source", "offer__advertiser")

    def get_changelist(self, request, **kwargs):
        return CampaignChangeList

    def get_list_display(self, request):
        if request.user.has_perm(MONEY_PERMISSION):
            return self.list_display
        return tuple(column for column in self.list_display if column not in MONEY_COLUMNS)

    @admin.display(description="Source", ordering="traffic_source__name")
    def source(self, campaign):
        return campaign.traffic_source.name  # its kind is in the filter beside the list

    @admin.display(description="Spend")
    def spend(self, campaign):
        return _money(_metric(campaign, "media_spend"))

    @admin.display(description="Leads (valid)")
    def leads(self, campaign):
        return f"{_metric(campaign, 'leads') or 0:,} ({_metric(campaign, 'valid_leads') or 0:,})"

    @admin.display(description="CPL")
    def cpl(self, campaign):
        return _money(_metric(campaign, "cpl"))

    @admin.display(description="Margin")
    def margin(self, campaign):
        return _money(_metric(campaign, "margin"))

    @admin.display(description="ROI")
    def roi(self, campaign):
        roi = _metric(campaign, "roi")
        return "—" if roi is None else f"{roi:.0%}"

    @admin.display(description="Tracking link")
    def tracking_link(self, campaign):
        if not campaign.pk:
            return "Save the campaign to get its tracking link."
        source = campaign.traffic_source
        return format_html(
            '<div class="lc-copy"><input type="text" readonly id="tracking-url" value="{}" aria-label="Tracking URL">'
            '<button type="button" data-copy="tracking-url">Copy</button></div>'
            '<div class="lc-help">Paste it into {} as the campaign\'s target URL; it fills {} on each click.</div>',
            tracking_url(campaign),
            source.name,
            ", ".join(source.tracking_macros().values()),
        )

    @admin.display(description="Pages")
    def page_links(self, campaign):
        if not campaign.pk:
            return "Save the campaign, then add its landing pages below."
        pages = landing_page_urls(campaign)
        if not pages:
            if campaign.landing_url:
                return format_html('Clicks go to <a href="{0}">{0}</a>.', campaign.landing_url)
            return "No landing page yet: add one below, or set an external landing URL above."
        return format_html_join(
            "",
            '<div class="lc-copy"><span class="lc-page-kind">{}</span><input type="text" readonly id="page-{}" '
            'value="{}" aria-label="{}"><button type="button" data-copy="page-{}">Copy</button></div>',
            (
                (
                    page.get_kind_display() + ("" if page.is_active else " (inactive)"),
                    page.pk,
                    url,
                    f"{page.get_kind_display()} URL",
                    page.pk,
                )
                for page, url in pages
            ),
        )

    @admin.action(description="Activate selected campaigns", permissions=["change"])
    def activate_campaigns(self, request, queryset):
        run_for_each(self, request, queryset, lambda campaign: campaign_activate(campaign=campaign), "activated")

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause_campaigns(self, request, queryset):
        run_for_each(self, request, queryset, lambda campaign: campaign_pause(campaign=campaign), "paused")

    @admin.action(description="Duplicate selected campaigns (as drafts)", permissions=["add"])
    def duplicate_campaigns(self, request, queryset):
        run_for_each(
            self, request, queryset, lambda campaign: campaign_duplicate(campaign=campaign), "duplicated as drafts"
        )


class QuizQuestionInline(TabularInline):
    model = QuizQuestion
    extra = 0
    fields = ("position", "key", "text", "kind", "options", "is_required")
    max_num = QUIZ_MAX_QUESTIONS  # the answers of more could not be stored with the lead

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_max=True, **kwargs)


@admin.register(LandingPage)
class LandingPageAdmin(ModelAdmin):
    empty_hint = "No landing pages yet. Add one to a campaign (on the campaign's page) to capture its leads."
    list_display = ("name", "campaign", "kind", "action", "slug", "position", "is_active")
    list_filter = ("kind", "is_active", "campaign__traffic_source__kind", "campaign__status")
    list_select_related = ("campaign",)
    search_fields = ("name", "slug", "campaign__name")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("campaign",)
    inlines = [QuizQuestionInline]


class DailyStatsImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with columns date, campaign (slug), impressions, clicks, spend.")
    traffic_source = forms.ModelChoiceField(
        TrafficSource.objects.all(),
        required=False,
        help_text="Optional: reject rows for campaigns that do not run on this source.",
    )
    skip_invalid = forms.BooleanField(
        required=False,
        label="Import the good rows even if some are rejected",
        help_text="Off: a file with any rejected row imports nothing.",
    )


@admin.register(DailyStat)
class DailyStatAdmin(ModelAdmin):
    empty_hint = (
        "No daily spend yet. Import a traffic source's CSV of impressions, clicks and spend with Import CSV above."
    )
    list_display = ("date", "campaign", "source_kind", "impressions", "clicks", "spend_display", "updated_at")
    # The offer and source the day was bought on (stored with it), not the campaign's of today.
    list_filter = ("traffic_source__kind", "traffic_source", "date")
    list_select_related = ("campaign", "traffic_source")
    search_fields = ("campaign__name", "campaign__slug")
    autocomplete_fields = ("campaign",)
    date_hierarchy = "date"
    change_list_template = "admin/campaigns/dailystat/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        # A stored day keeps its campaign (and so its offer and source) and its date, under which its
        # spend is booked and rolled up; a wrong one is deleted (its spend reversed) and entered again.
        return ("campaign", "date", "offer", "traffic_source") if obj else ("offer", "traffic_source")

    def get_fields(self, request, obj=None):
        fields = ["campaign", "date", "impressions", "clicks", "spend"]
        return [*fields[:1], "offer", "traffic_source", *fields[1:]] if obj else fields

    @admin.display(description="Source kind", ordering="traffic_source__kind")
    def source_kind(self, stat):
        return stat.traffic_source.get_kind_display()

    @admin.display(description="Spend", ordering="spend")
    def spend_display(self, stat):
        return _money(stat.spend)

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="campaigns_dailystat_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        report = None
        form = DailyStatsImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            report = daily_stats_import(
                data=form.cleaned_data["file"].read(),
                traffic_source=form.cleaned_data["traffic_source"],
                skip_invalid=form.cleaned_data["skip_invalid"],
            )
            if report.imported and not report.errors:
                self.message_user(request, f"Daily stats imported: {report.summary()}", messages.SUCCESS)
                return redirect("admin:campaigns_dailystat_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import daily stats from CSV",
            "opts": self.model._meta,
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/campaigns/dailystat/import.html", context)


class OffTargetFilter(admin.SimpleListFilter):
    title = "targeting"
    parameter_name = "targeting"

    def lookups(self, request, model_admin):
        return [("on", "On target"), ("off", "Off target")]

    def queryset(self, request, queryset):
        if self.value() == "off":
            return queryset.exclude(off_target_reasons=[])
        if self.value() == "on":
            return queryset.filter(off_target_reasons=[])
        return queryset


@admin.register(Click)
class ClickAdmin(ModelAdmin):
    empty_hint = "No clicks yet. Clicks are recorded when visitors follow a campaign's tracking link."
    list_display = (
        "created_at",
        "campaign",
        "click_id",
        "country",
        "device_type",
        "os",
        "browser",
        "is_bot",
        "on_target",
    )
    list_filter = (
        "traffic_source__kind",
        "device_type",
        "os",
        "is_bot",
        OffTargetFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("campaign",)
    search_fields = ("=click_id", "=country", "campaign__slug")
    show_full_result_count = False  # counting millions of clicks on every page view is slow
    readonly_fields = [field.name for field in Click._meta.fields]

    @admin.display(description="On target", boolean=True)
    def on_target(self, click):
        return not click.is_off_target

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

"""What marketing and managers configure: qualification rules, blocked domains, reps, the outbox."""

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from unfold.admin import ModelAdmin, TabularInline

from campaigns.admin import OfferAdmin, OfferListFilter
from campaigns.models import Offer

from ..models import (
    BlockedEmailDomain,
    OutboxEntry,
    QualificationRule,
    SalesRepProfile,
)
from ..services.outbox import follow_up_kinds, follow_up_label, outbox_retry


class QualificationRuleInline(TabularInline):
    model = QualificationRule
    extra = 1
    fields = ("position", "field", "operator", "value", "is_active")


class OfferWithRulesAdmin(OfferAdmin):
    inlines = [QualificationRuleInline]


admin.site.unregister(Offer)
admin.site.register(Offer, OfferWithRulesAdmin)


@admin.register(QualificationRule)
class QualificationRuleAdmin(ModelAdmin):
    empty_hint = (
        "No qualification rules. Add them on an offer's page to qualify its leads (country, budget, answers...)."
    )
    list_display = ("__str__", "offer", "position", "is_active")
    list_filter = (("offer", OfferListFilter), "is_active")
    list_select_related = ("offer__advertiser",)
    autocomplete_fields = ("offer",)


@admin.register(BlockedEmailDomain)
class BlockedEmailDomainAdmin(ModelAdmin):
    list_display = ("domain", "note", "created_at")
    search_fields = ("domain",)


@admin.register(SalesRepProfile)
class SalesRepProfileAdmin(ModelAdmin):
    list_display = ("user", "is_available", "countries", "last_assigned_at")
    list_filter = ("is_available",)
    list_select_related = ("user",)
    filter_horizontal = ("offers",)


class FollowUpKindFilter(admin.SimpleListFilter):
    """The kinds the apps registered, by their labels (the column itself has no choices)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind.name, kind.label) for kind in follow_up_kinds()]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(OutboxEntry)
class OutboxEntryAdmin(ModelAdmin):
    list_display = ("id", "kind_label", "status", "lead", "attempts", "next_attempt_at", "created_at", "done_at")
    list_filter = ("status", FollowUpKindFilter)
    list_select_related = ("lead",)
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    readonly_fields = [field.name for field in OutboxEntry._meta.fields]
    actions = ("retry_now",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="kind", ordering="kind")
    def kind_label(self, entry: OutboxEntry) -> str:
        return follow_up_label(entry.kind)

    def has_retry_permission(self, request):
        return request.user.has_perm("leads.assign_lead") or request.user.is_superuser

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        count = outbox_retry(entry_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} follow-up(s) sent again.", messages.SUCCESS)

"""The sales workspace: the lead list, the lead page and the actions reps and managers use."""

import csv
from datetime import timedelta
from decimal import Decimal
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import ShowFacets
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from unfold.admin import ModelAdmin, TabularInline

from campaigns.models import Offer
from leadcrm.admin_actions import run_for_each
from leadcrm.admin_history import HistoryNamesById
from leadcrm.errors import ApplicationError, Conflict
from leadcrm.spreadsheets import spreadsheet_safe

from ..models import (
    OPEN_STATUSES,
    CallLog,
    Lead,
    LeadNote,
    LeadStatus,
)
from ..selectors import can_see_all_leads, can_work_lead, lead_list, lead_search
from ..services import lead_add_note, lead_assign, lead_claim, lead_log_call, lead_set_status
from ..services.assignment import sales_reps
from ..services.erasure import lead_erase, same_person_leads
from ..services.workflow import ALLOWED_TRANSITIONS, validate_status_change
from ..signals import personal_data_read
from .consent_section import consent_certificate_html, third_party_consent_html
from .extensions import LEAD_ACTIONS, LEAD_LINKS, LEAD_SECTIONS
from .money_sections import deliveries_and_money_html, outcomes_html
from .timeline import timeline_html


class EstimatedCountPaginator(Paginator):
    """The lead list never counts millions of rows exactly on a page view.

    Unfiltered on PostgreSQL, it takes the planner's row estimate. Otherwise it counts at most
    COUNT_CAP + 1 rows (a LIMIT inside the COUNT) and, past the cap, says "1,000+": a rep's list or a
    filter over a million leads costs a bounded count, not a scan."""

    estimate_above = 100_000  # below this an exact count is cheap and the estimate too rough
    count_cap = 1000
    template_name = "admin/leads/lead/pagination_capped.html"

    estimated = False  # set by count: the figure is the planner's estimate

    @property
    def capped(self) -> bool:
        count = self.count
        return not self.estimated and count > self.count_cap

    def _estimate(self) -> int | None:
        query = getattr(self.object_list, "query", None)
        if connection.vendor != "postgresql" or query is None or query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [Lead._meta.db_table])
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] > self.estimate_above else None

    @cached_property
    def count(self) -> int:
        estimate = self._estimate()
        self.estimated = estimate is not None
        if estimate is not None:
            return estimate
        if isinstance(self.object_list, QuerySet):
            return self.object_list.order_by()[: self.count_cap + 1].count()
        return super().count


class AssignedToFilter(admin.SimpleListFilter):
    title = "assigned to"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        choices = [("me", "Me"), ("none", "Unassigned")]
        if can_see_all_leads(request.user):
            choices += [(str(user.pk), user.get_username()) for user in sales_reps().order_by("username")]
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to=request.user)
        if value == "none":
            return queryset.filter(assigned_to__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assigned_to_id=int(value))
        return queryset


class CountryFilter(admin.SimpleListFilter):
    title = "country"
    parameter_name = "country"

    def lookups(self, request, model_admin):
        # From what offers accept, not a DISTINCT over millions of leads.
        codes: set[str] = set()
        for countries in Offer.objects.values_list("accepted_countries", flat=True):
            codes.update(countries or [])
        return [(code, code) for code in sorted(codes)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(country=value[:2].upper()) if value else queryset


class ScoreFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score"
    BANDS = {"high": (70, 100), "medium": (40, 69), "low": (0, 39)}

    def lookups(self, request, model_admin):
        return [(name, f"{name.capitalize()} ({low}-{high})") for name, (low, high) in self.BANDS.items()]

    def queryset(self, request, queryset):
        band = self.BANDS.get(self.value() or "")
        if band:
            low, high = band
            return queryset.filter(score__gte=low, score__lte=high)
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "open or closed"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open (new, contacted, working)"), ("no", "Closed (won, lost, returned)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status__in=OPEN_STATUSES)
        if self.value() == "no":
            return queryset.exclude(status__in=OPEN_STATUSES)
        return queryset


class FollowUpFilter(admin.SimpleListFilter):
    title = "follow-up"
    parameter_name = "follow_up"

    def lookups(self, request, model_admin):
        return [("due", "Due today or overdue"), ("week", "Due within 7 days"), ("none", "None set")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "due":
            return queryset.filter(next_follow_up__lte=today, status__in=OPEN_STATUSES)
        if self.value() == "week":
            return queryset.filter(next_follow_up__lte=today + timedelta(days=7), status__in=OPEN_STATUSES)
        if self.value() == "none":
            return queryset.filter(next_follow_up__isnull=True)
        return queryset


class EscalatedFilter(admin.SimpleListFilter):
    title = "speed to lead"
    parameter_name = "escalated"

    def lookups(self, request, model_admin):
        return [("yes", "Escalated, not contacted"), ("no", "Not escalated")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(escalated_at__isnull=False, first_contacted_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(escalated_at__isnull=True)
        return queryset


class LeadAdminForm(forms.ModelForm):
    new_status = forms.ChoiceField(label="Change status to", required=False)
    change_reason = forms.CharField(
        label="Reason", required=False, max_length=300, help_text="Needed for lost and returned."
    )
    sale_amount_input = forms.DecimalField(
        label="Sale amount",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        help_text="Needed for won.",
    )
    sale_currency_input = forms.CharField(
        label="Currency", required=False, max_length=3, help_text="Default: the offer's."
    )

    class Meta:
        model = Lead
        fields = ["first_name", "last_name", "company", "zip_code", "message", "next_follow_up"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = ALLOWED_TRANSITIONS.get(self.instance.status, set()) if self.instance.pk else set()
        cast(forms.ChoiceField, self.fields["new_status"]).choices = [("", "(keep)")] + [
            (value, label) for value, label in LeadStatus.choices if value in allowed
        ]

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        status = cleaned.get("new_status")
        if status:
            try:
                validate_status_change(
                    lead=self.instance,
                    status=status,
                    reason=cleaned.get("change_reason", ""),
                    sale_amount=cleaned.get("sale_amount_input"),
                )
            except ApplicationError as error:
                fields = {"reason": "change_reason", "sale_amount": "sale_amount_input"}
                for name, problems in error.extra.items():
                    self.add_error(fields.get(name), problems)
                if not error.extra:
                    self.add_error("new_status", error.message)
        return cleaned


class LeadNoteInline(TabularInline):
    model = LeadNote
    extra = 1
    fields = ("body", "author", "created_at")
    readonly_fields = ("author", "created_at")
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False  # notes are a record: add, never rewrite


class CallLogInline(TabularInline):
    model = CallLog
    extra = 0
    fields = ("outcome", "duration_seconds", "notes", "rep", "called_at")
    readonly_fields = ("rep", "called_at")
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False


class EraseConfirmForm(forms.Form):
    same_person = forms.BooleanField(
        label="Also their other leads",
        required=False,
        initial=True,
        help_text="Every other lead with the same email address or valid phone number (other offers, "
        "duplicates), listed above.",
    )
    confirm = forms.BooleanField(
        label="Erase for good",
        help_text="Names, email, phone, address, answers, IP, notes and call notes are blanked everywhere and "
        "cannot be restored. The leads stay, counted in reports, and are never delivered, nurtured or exported.",
    )


class StatusChangeForm(forms.Form):
    reason = forms.CharField(required=False, max_length=300)
    sale_amount = forms.DecimalField(required=False, min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    sale_currency = forms.CharField(required=False, max_length=3)


class AssignForm(forms.Form):
    rep = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False, empty_label="(unassign)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["rep"]).queryset = sales_reps().order_by("username")


@admin.register(Lead)
class LeadAdmin(HistoryNamesById, ModelAdmin):
    empty_hint = (
        "No leads here. Leads arrive from landing pages, the partner API and CSV imports; if you filtered"
        " the list, clear the filters."
    )
    form = LeadAdminForm
    # What each role reads at 1366 px: a rep calls and writes, so the phone and email are links;
    # managers and marketing judge the lead and who holds it.
    list_display = (
        "lead_name",
        "status",
        "lead_type",
        "validity",
        "score",
        "campaign",
        "country",
        "assigned_to",
        "age",
        "flags",
    )
    rep_list_display = ("lead_name", "status", "score", "phone_link", "email_link", "campaign", "next_follow_up", "age")
    list_filter = (
        "status",
        OpenFilter,
        FollowUpFilter,
        "lead_type",
        "validity",
        ScoreFilter,
        "qualification",
        "is_duplicate",
        "traffic_source__kind",
        "campaign",
        CountryFilter,
        AssignedToFilter,
        EscalatedFilter,
        "door",
        "is_test",
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("campaign", "traffic_source", "assigned_to")
    search_fields = ("email", "phone", "first_name", "last_name", "click_id")
    search_help_text = "Email, phone, click id (exact) or the start of a first or last name."
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    inlines = [LeadNoteInline, CallLogInline]
    actions = (
        "claim_leads",
        "assign_leads",
        "mark_contacted",
        "mark_won",
        "mark_lost",
        "export_csv",
        "erase_personal_data",
    )
    readonly_fields = (
        "public_id",
        "email_link",
        "phone_link",
        "country",
        "company_size",
        "budget",
        "answers_table",
        "campaign",
        "offer",
        "traffic_source",
        "landing_page",
        "door",
        "click_id",
        "sub_ids",
        "ip",
        "device_type",
        "os",
        "browser",
        "created_at",
        "action",
        "lead_type",
        "validity",
        "validity_reasons_list",
        "duplicate_info",
        "qualification",
        "qualification_reasons_list",
        "score",
        "score_breakdown_table",
        "consent",
        "consent_text",
        "consent_version",
        "consent_at",
        "consent_ip",
        "consent_certificate_summary",
        "third_party_consent",
        "status",
        "status_reason",
        "sale_amount",
        "sale_currency",
        "converted_at",
        "assigned_to",
        "assigned_at",
        "first_contacted_at",
        "escalated_at",
        "is_test",
        "erased_at",
        "timeline",
        "outcomes_reported",
        "deliveries_and_money",
        "emails_and_flows",
    )
    # The page in tabs: what a rep needs first, then the story, the money, the emails and the consent.
    fieldsets = (
        (
            "Overview",
            {
                "classes": ["tab"],
                "fields": (
                    ("first_name", "last_name"),
                    ("email_link", "phone_link"),
                    ("company", "company_size", "budget"),
                    ("country", "zip_code"),
                    "message",
                    "answers_table",
                    "erased_at",
                    ("status", "status_reason"),
                    ("new_status", "change_reason"),
                    ("sale_amount_input", "sale_currency_input"),
                    ("assigned_to", "assigned_at"),
                    ("first_contacted_at", "escalated_at"),
                    "next_follow_up",
                    ("sale_amount", "sale_currency", "converted_at"),
                    "outcomes_reported",
                    ("score", "score_breakdown_table"),
                ),
            },
        ),
        (
            "Source and quality",
            {
                "classes": ["tab"],
                "fields": (
                    ("campaign", "offer", "traffic_source"),
                    ("landing_page", "door", "created_at"),
                    ("click_id", "sub_ids"),
                    ("ip", "device_type", "os", "browser"),
                    ("action", "lead_type"),
                    ("validity", "validity_reasons_list"),
                    "duplicate_info",
                    ("qualification", "qualification_reasons_list"),
                    "public_id",
                    "is_test",
                ),
            },
        ),
        ("Timeline", {"classes": ["tab"], "fields": ("timeline",)}),
        ("Deliveries and money", {"classes": ["tab"], "fields": ("deliveries_and_money",)}),
        ("Emails and flows", {"classes": ["tab"], "fields": ("emails_and_flows",)}),
        (
            "Consent",
            {
                "classes": ["tab"],
                "fields": (
                    ("consent", "consent_version", "consent_at", "consent_ip"),
                    "consent_text",
                    "consent_certificate_summary",
                    "third_party_consent",
                ),
            },
        ),
    )

    # --- list -----------------------------------------------------------------------------
    def get_list_display(self, request):
        return self.list_display if can_see_all_leads(request.user) else self.rep_list_display

    def get_queryset(self, request):
        return lead_list(user=request.user)

    def get_search_results(self, request, queryset, search_term):
        return lead_search(queryset, search_term), False

    @admin.display(description="Lead", ordering="last_name")
    def lead_name(self, lead):
        return str(lead)

    @admin.display(description="Age", ordering="created_at")
    def age(self, lead):
        return timesince(lead.created_at, depth=1)

    @admin.display(description="Flags")
    def flags(self, lead):
        flags = []
        if lead.is_duplicate:
            flags.append("duplicate")
        if lead.is_test:
            flags.append("test")
        if lead.escalated_at and not lead.first_contacted_at:
            flags.append("escalated")
        return ", ".join(flags)

    # --- change page ----------------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        links = [
            {"title": link.title, "icon": link.icon, "url": link.url(int(object_id))}
            for link in LEAD_LINKS
            if object_id.isdigit() and link.allowed(request)
        ]
        response = super().change_view(request, object_id, form_url, {**(extra_context or {}), "lead_links": links})
        lead = getattr(response, "context_data", {}).get("original")
        if request.method == "GET" and response.status_code == 200 and lead is not None:
            personal_data_read.send(sender=Lead, user=request.user, kind="lead_page", path=request.path, lead=lead)
        return response

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not can_work_lead(user=request.user, lead=obj):
            return [
                (name, {**options, "fields": [row for row in options["fields"] if not _has_input(row)]})
                for name, options in fieldsets
            ]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not can_work_lead(user=request.user, lead=obj):
            return [
                *self.readonly_fields,
                "first_name",
                "last_name",
                "company",
                "zip_code",
                "message",
                "next_follow_up",
            ]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or can_work_lead(user=request.user, lead=obj)

    def has_add_permission(self, request):
        return False  # leads come in through the pipeline's doors, not typed in

    def save_model(self, request, obj, form, change):
        # Only the fields this form edits: assignment, status or escalation written by another
        # request since the page was opened must not be overwritten with the page's old values.
        edited = [name for name in form.changed_data if name in LeadAdminForm.Meta.fields]
        if edited:
            obj.save(update_fields=[*edited, "updated_at"])
        status = form.cleaned_data.get("new_status")
        if status:
            try:
                lead_set_status(
                    lead=obj,
                    status=status,
                    actor=request.user,
                    reason=form.cleaned_data.get("change_reason", ""),
                    sale_amount=form.cleaned_data.get("sale_amount_input"),
                    sale_currency=form.cleaned_data.get("sale_currency_input", ""),
                )
            except ApplicationError as error:  # the lead changed since the form was shown
                self.message_user(request, error.message, messages.ERROR)

    def save_formset(self, request, form, formset, change):
        for instance in formset.save(commit=False):
            if instance.pk:
                continue
            if isinstance(instance, LeadNote):
                lead_add_note(lead=form.instance, author=request.user, body=instance.body)
            elif isinstance(instance, CallLog):
                lead_log_call(
                    lead=form.instance,
                    rep=request.user,
                    outcome=instance.outcome,
                    duration_seconds=instance.duration_seconds,
                    notes=instance.notes,
                )

    @admin.display(description="Answers")
    def answers_table(self, lead):
        if not lead.answers:
            return "—"
        return format_html(
            '<table class="lc-table compact">{}</table>',
            format_html_join(
                "",
                "<tr><th>{}</th><td>{}</td></tr>",
                ((key, ", ".join(value) if isinstance(value, list) else value) for key, value in lead.answers.items()),
            ),
        )

    @admin.display(description="Validity reasons")
    def validity_reasons_list(self, lead):
        return _bullets(lead.validity_reasons)

    @admin.display(description="Failed rules")
    def qualification_reasons_list(self, lead):
        return _bullets(lead.qualification_reasons)

    @admin.display(description="Duplicate")
    def duplicate_info(self, lead):
        if not lead.is_duplicate:
            return "No"
        if lead.duplicate_of_id:
            url = reverse("admin:leads_lead_change", args=[lead.duplicate_of_id])
            return format_html('Yes, of <a href="{}">an earlier lead</a>', url)
        return "Yes"

    @admin.display(description="Score breakdown")
    def score_breakdown_table(self, lead):
        return format_html(
            '<table class="lc-table compact">{}</table>',
            format_html_join(
                "",
                '<tr><th>{}</th><td>{}</td><td class="num">+{}</td></tr>',
                ((item["factor"], item.get("detail", ""), item["points"]) for item in lead.score_breakdown),
            ),
        )

    @admin.display(description="Timeline")
    def timeline(self, lead):
        return timeline_html(list(lead.events.select_related("actor").order_by("created_at", "id")))

    @admin.display(description="Outcome")
    def outcomes_reported(self, lead):
        return outcomes_html(lead)

    @admin.display(description="Deliveries, postbacks and money")
    def deliveries_and_money(self, lead):
        sections = [render(lead) for render in LEAD_SECTIONS.get("deliveries_and_money", [])]
        return format_html_join("", "{}", ((section,) for section in [*sections, deliveries_and_money_html(lead)]))

    @admin.display(description="Emails and flows")
    def emails_and_flows(self, lead):
        sections = [render(lead) for render in LEAD_SECTIONS.get("emails_and_flows", [])]
        return format_html_join("", "{}", ((section,) for section in sections)) or "No email flows are installed."

    @admin.display(description="Consent certificate")
    def consent_certificate_summary(self, lead):
        return consent_certificate_html(lead)

    @admin.display(description="Supplier's certificate (TrustedForm, Jornaya)")
    def third_party_consent(self, lead):
        return third_party_consent_html(lead)

    @admin.display(description="Email", ordering="email")
    def email_link(self, lead):
        return format_html('<a href="mailto:{0}">{0}</a>', lead.email) if lead.email else "—"

    @admin.display(description="Phone", ordering="phone")
    def phone_link(self, lead):
        return format_html('<a href="tel:{0}">{0}</a>', lead.phone) if lead.phone else "—"

    def has_delete_permission(self, request, obj=None):
        # Every lead that reached us is kept, counted in its campaign's figures and its money; a person's
        # data goes with "Erase personal data", which also reaches every copy (a delete left its consent
        # certificate's IP and user agent behind, for ever).
        return False

    # --- registered by other apps (nurture), through Django's documented hooks ------------
    def get_actions(self, request):
        actions = super().get_actions(request)
        for action in LEAD_ACTIONS:
            if action.allowed(request):
                actions[action.name] = (action.function, action.name, action.description)
        return actions

    # --- actions --------------------------------------------------------------------------
    @admin.action(description="Assign to me (claim from the queue)", permissions=["change"])
    def claim_leads(self, request, queryset):
        # A lead another rep claimed after this page loaded has left this rep's scope, so it is not in
        # the queryset at all; say so rather than silently doing nothing.
        if request.POST.get("select_across") != "1":
            selected = {int(pk) for pk in request.POST.getlist(ACTION_CHECKBOX_NAME) if pk.isdigit()}
            gone = selected - set(queryset.values_list("pk", flat=True))
            if gone:
                self.message_user(
                    request,
                    f"{len(gone)} lead(s) are no longer in your queue; someone else may have claimed them.",
                    messages.ERROR,
                )
        run_for_each(self, request, queryset, lambda lead: lead_claim(lead=lead, user=request.user), "assigned to you")

    def has_assign_permission(self, request):
        return request.user.has_perm("leads.assign_lead")

    def has_export_permission(self, request):
        return request.user.has_perm("leads.export_lead")

    def has_erase_permission(self, request):
        return request.user.has_perm("leads.erase_lead")

    @admin.action(description="Erase personal data (the person asked)…", permissions=["erase"])
    def erase_personal_data(self, request, queryset):
        form = EraseConfirmForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            leads = same_person_leads(queryset) if form.cleaned_data["same_person"] else list(queryset)
            erased = sum(lead_erase(lead=lead, actor=request.user) for lead in leads)
            self.message_user(request, f"Erased the personal data of {erased} lead(s).", messages.SUCCESS)
            return None
        # Erasing cannot be undone: the page names every other lead the option would take too.
        chosen = {lead.pk for lead in queryset}
        others = [lead for lead in same_person_leads(queryset) if lead.pk not in chosen]
        return self._intermediate(request, queryset, form, "Erase personal data", "erase_personal_data", others=others)

    @admin.action(description="Assign to a sales rep…", permissions=["assign"])
    def assign_leads(self, request, queryset):
        form = AssignForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            rep = form.cleaned_data["rep"]
            run_for_each(
                self,
                request,
                queryset,
                lambda lead: lead_assign(lead=lead, to_user=rep, actor=request.user),
                f"assigned to {rep or 'nobody'}",
            )
            return None
        return self._intermediate(request, queryset, form, "Assign leads", "assign_leads")

    def _status_action(self, request, queryset, status):
        run_for_each(
            self,
            request,
            queryset,
            lambda lead: self._checked_set_status(request, lead, status),
            f"marked {LeadStatus(status).label.lower()}",
        )

    def _checked_set_status(self, request, lead, status, **kwargs):
        if not can_work_lead(user=request.user, lead=lead):
            # A message for this lead, not a 403 that would hide what the other selected leads did.
            raise Conflict("you can only change leads assigned to you; claim it first.")
        return lead_set_status(lead=lead, status=status, actor=request.user, **kwargs)

    @admin.action(description="Mark contacted", permissions=["change"])
    def mark_contacted(self, request, queryset):
        self._status_action(request, queryset, LeadStatus.CONTACTED)

    @admin.action(description="Mark won…", permissions=["change"])
    def mark_won(self, request, queryset):
        form = StatusChangeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid() and form.cleaned_data["sale_amount"]:
            data = form.cleaned_data
            run_for_each(
                self,
                request,
                queryset,
                lambda lead: self._checked_set_status(
                    request, lead, LeadStatus.WON, sale_amount=data["sale_amount"], sale_currency=data["sale_currency"]
                ),
                "marked won",
            )
            return None
        if form.is_bound:
            form.add_error("sale_amount", "Enter the sale amount.")
        form.fields.pop("reason")
        return self._intermediate(request, queryset, form, "Mark leads won", "mark_won")

    @admin.action(description="Mark lost…", permissions=["change"])
    def mark_lost(self, request, queryset):
        form = StatusChangeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid() and form.cleaned_data["reason"].strip():
            reason = form.cleaned_data["reason"]
            run_for_each(
                self,
                request,
                queryset,
                lambda lead: self._checked_set_status(request, lead, LeadStatus.LOST, reason=reason),
                "marked lost",
            )
            return None
        if form.is_bound:
            form.add_error("reason", "Say why the leads are lost.")
        form.fields.pop("sale_amount")
        form.fields.pop("sale_currency")
        return self._intermediate(request, queryset, form, "Mark leads lost", "mark_lost")

    def _intermediate(self, request, queryset, form, title, action, **extra):
        context = {
            **extra,
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "form": form,
            "leads": queryset,
            "action": action,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/leads/lead/action_form.html", context)

    @admin.action(description="Export selected leads as CSV", permissions=["export"])
    def export_csv(self, request, queryset):
        columns = (
            "public_id",
            "created_at",
            "status",
            "lead_type",
            "validity",
            "qualification",
            "score",
            "is_duplicate",
            "email",
            "phone",
            "first_name",
            "last_name",
            "company",
            "country",
            "campaign__slug",
            "traffic_source__kind",
            "assigned_to__username",
        )

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        personal_data_read.send(
            sender=Lead, user=request.user, kind="lead_export", path=request.path, rows=queryset.count()
        )
        rows = queryset.order_by("-created_at").values_list(*columns).iterator(chunk_size=2000)
        response = StreamingHttpResponse(
            (writer.writerow([spreadsheet_safe(value) for value in row]) for row in _with_header(columns, rows)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="leads-{timezone.localdate()}.csv"'
        return response


def _with_header(columns, rows):
    yield columns
    yield from rows


def _has_input(row) -> bool:
    names = row if isinstance(row, tuple | list) else (row,)
    return any(
        name in ("new_status", "change_reason", "sale_amount_input", "sale_currency_input", "next_follow_up")
        for name in names
    )


def _bullets(items):
    if not items:
        return "—"
    return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((item,) for item in items)))


def _details(data: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in data.items() if value not in (None, "", [], {}))

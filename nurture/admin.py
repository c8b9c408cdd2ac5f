"""The nurture admin: flows with their steps and statistics, previews and test sends, enrollments,
the suppression list with import and export, and "add to flow" on the lead list."""

import csv
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin
from unfold.admin import ModelAdmin, StackedInline, TabularInline
from unfold.widgets import UnfoldAdminTextareaWidget

from campaigns.models import Offer
from leadcrm.admin_actions import run_for_each
from leadcrm.admin_history import HistoryNamesById
from leadcrm.admin_logs import ReadOnlyLogAdmin
from leadcrm.csv_upload import CsvUploadError, control_character_problem, read_csv_upload
from leadcrm.errors import ApplicationError
from leadcrm.progress import progress_html
from leadcrm.spreadsheets import spreadsheet_safe
from leads.admin.extensions import register_lead_action, register_lead_section
from leads.models import Lead
from leads.services.normalisation import normalise_email
from leads.services.samples import sample_lead
from leads.signals import personal_data_read

from .models import Audience, AudienceExport, Enrollment, Flow, FlowStep, NurtureMessage, Suppression
from .selectors import flow_summary, flows_with_statistics, step_statistics
from .services.audiences import audience_conditions_changed, audience_export_request, audience_leads, audience_size
from .services.enrollment import suppress, suppress_many
from .services.flows import (
    enrollments_move_to_step,
    enrollments_pause,
    enrollments_remove,
    enrollments_resume,
    flow_retarget_branches,
    flow_set_status,
    leads_add_to_flow,
)
from .services.sending import build_email, render_message


def _kind_fields(title: str, kind: str, *fields) -> tuple[str, dict]:
    return title, {"classes": ["step-kind", f"step-kind-{kind}"], "fields": fields}


class FlowStepInline(StackedInline):
    model = FlowStep
    formfield_overrides = {models.TextField: {"widget": UnfoldAdminTextareaWidget(attrs={"rows": 4})}}
    extra = 0
    can_delete = False  # steps leads may sit on are retired, never deleted
    ordering = ("position", "id")
    # Drag a step to move it; its position (which branches jump to) is renumbered on save.
    ordering_field = "position"
    # Each kind's fields sit in a fieldset marked with the kind; admin.js shows only the chosen one.
    fieldsets = (
        (None, {"fields": (("position", "kind"), "is_retired")}),
        _kind_fields("Wait", "wait", ("wait_minutes", "wait_until_weekday", "wait_until_time")),
        _kind_fields("Email", "email", "subject", "body_text", "body_html"),
        _kind_fields("Branch", "branch", ("condition", "condition_value", "goto_position")),
        _kind_fields("Change status", "set_status", "new_status"),
        _kind_fields("Webhook", "webhook", "destination"),
        _kind_fields("Add to audience", "audience", "audience"),
    )


if TYPE_CHECKING:
    _AdminMixinBase = admin.ModelAdmin[Any]  # what the mixin is mixed into
else:
    _AdminMixinBase = object


class LeadConditionsAdminMixin(_AdminMixinBase):
    """For flows and audiences: their offer picker in one query (an offer's name shows its advertiser)."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "offers":
            offers = self.get_field_queryset(None, db_field, request)  # the offer admin's ordering, if any
            kwargs["queryset"] = (Offer.objects.all() if offers is None else offers).select_related("advertiser")
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(Flow)
class FlowAdmin(LeadConditionsAdminMixin, ModelAdmin):
    empty_hint = "No nurture flows yet. Add one: when leads enter it, then its steps (emails, waits, branches)."
    list_display = ("name", "status", "trigger", "entered", "active", "completed", "converted", "exited")
    list_filter = ("status", "trigger")
    search_fields = ("name",)
    autocomplete_fields = ("offers", "campaigns")
    inlines = [FlowStepInline]
    actions = ("activate", "pause", "archive")
    readonly_fields = ("summary", "statistics")
    fieldsets = (
        (None, {"fields": ("summary",)}),
        (None, {"fields": ("name", "status", "trigger", "trigger_status", "segment_days", "reentry_cooldown_days")}),
        ("When leads leave early", {"fields": ("exit_statuses", "exit_score_above")}),
        (
            "Who may enter (empty: anyone)",
            {
                "fields": (
                    "offers",
                    "campaigns",
                    "traffic_source_kinds",
                    "lead_types",
                    "validities",
                    "qualifications",
                    "countries",
                    ("min_score", "max_score"),
                )
            },
        ),
        ("Statistics", {"fields": ("statistics",)}),
    )

    def get_queryset(self, request):
        return flows_with_statistics()

    def save_formset(self, request, form, formset, change):
        if formset.model is not FlowStep or not change:
            return super().save_formset(request, form, formset, change)
        flow = form.instance
        old_positions = dict(flow.steps.values_list("pk", "position"))
        edited = {step_form.instance.pk for step_form in formset.forms if "goto_position" in step_form.changed_data}
        super().save_formset(request, form, formset, change)
        flow_retarget_branches(flow=flow, old_positions=old_positions, edited=edited)

    @admin.display(description="The flow in short")
    def summary(self, flow):
        if not flow.pk:
            return "Save the flow, then add its steps below; their summary appears here."
        lines = flow_summary(flow)
        if not lines:
            return "No steps yet: add the first one below (an email, say), then save."
        return format_html(
            '<ol class="lc-flow-summary">{}</ol>', format_html_join("", "<li>{}</li>", ((line,) for line in lines))
        )

    @admin.display(ordering="entered")
    def entered(self, flow):
        return flow.entered

    @admin.display(ordering="active")
    def active(self, flow):
        return flow.active

    @admin.display(ordering="completed")
    def completed(self, flow):
        return flow.completed

    @admin.display(ordering="converted")
    def converted(self, flow):
        return flow.converted

    @admin.display(ordering="exited")
    def exited(self, flow):
        return flow.exited

    @admin.display(description="Per step")
    def statistics(self, flow):
        if flow.pk is None:
            return "Statistics appear once the flow has steps and leads."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    f"{step}{' (retired)' if step.is_retired else ''}",
                    step.entered,
                    step.waiting,
                    step.sent,
                    step.opened,
                    step.clicked,
                    step.converted,
                    step.exited,
                    format_html(
                        '<a href="{}">preview</a>', reverse("admin:nurture_flow_preview", args=[flow.pk, step.pk])
                    )
                    if step.kind == FlowStep.Kind.EMAIL
                    else "",
                )
                for step in step_statistics(flow=flow)
            ),
        )
        header = mark_safe(
            "<tr><th>Step</th><th>Entered</th><th>Waiting</th><th>Sent</th><th>Opened</th><th>Clicked</th>"
            "<th>Converted</th><th>Exited</th><th></th></tr>"
        )
        return format_html('<div class="lc-scroll"><table class="lc-table">{}{}</table></div>', header, rows)

    @admin.action(description="Activate", permissions=["change"])
    def activate(self, request, queryset):
        run_for_each(self, request, queryset, lambda f: flow_set_status(flow=f, status=Flow.Status.ACTIVE), "activated")

    @admin.action(description="Pause (enrollments wait)", permissions=["change"])
    def pause(self, request, queryset):
        run_for_each(self, request, queryset, lambda f: flow_set_status(flow=f, status=Flow.Status.PAUSED), "paused")

    @admin.action(description="Archive (enrolled leads leave)", permissions=["change"])
    def archive(self, request, queryset):
        run_for_each(
            self, request, queryset, lambda f: flow_set_status(flow=f, status=Flow.Status.ARCHIVED), "archived"
        )

    def get_urls(self):
        # django-csp types a view as taking the request alone; this one takes the URL's ids too.
        email_view = csp_replace(EMAIL_PREVIEW_POLICY)(self.preview_email_view)  # type: ignore[arg-type]
        email_document = xframe_options_sameorigin(email_view)
        return [
            path(
                "<int:flow_id>/steps/<int:step_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="nurture_flow_preview",
            ),
            path(
                "<int:flow_id>/steps/<int:step_id>/preview/email.html",
                self.admin_site.admin_view(email_document),
                name="nurture_flow_preview_email",
            ),
            *super().get_urls(),
        ]

    def _previewed(self, request, flow, step_id):
        """The chosen lead (?lead=<id>) or None, and the step's message to it or to a sample lead. The
        chosen lead's personal data is read: the access log records it, as it does the lead's page."""
        step = get_object_or_404(FlowStep, pk=step_id, flow=flow, kind=FlowStep.Kind.EMAIL)
        lead_id = request.GET.get("lead", "")
        lead = (
            Lead.objects.select_related("campaign", "offer").filter(pk=lead_id).first() if lead_id.isdigit() else None
        )
        if lead is not None:
            personal_data_read.send(sender=Lead, user=request.user, kind="email_preview", path=request.path, lead=lead)
        message = NurtureMessage(pk=0, step=step, lead=lead or sample_lead(), to_email=(lead or sample_lead()).email)
        return lead, message

    def preview_email_view(self, request, flow_id, step_id):
        """The email's HTML alone, the document the preview page frames (under EMAIL_PREVIEW_POLICY)."""
        flow = get_object_or_404(Flow, pk=flow_id)
        if not self.has_view_permission(request, flow):
            raise PermissionDenied
        _lead, message = self._previewed(request, flow, step_id)
        return HttpResponse(render_message(message)[2])

    def preview_view(self, request, flow_id, step_id):
        """The email rendered for a chosen lead (?lead=<id>) or a sample one; POST sends it as a test."""
        flow = get_object_or_404(Flow, pk=flow_id)
        if not self.has_view_permission(request, flow):
            return redirect("admin:index")
        lead, message = self._previewed(request, flow, step_id)
        step = message.step
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "flow": flow, "step": step}
        if request.method == "POST" and self.has_change_permission(request, flow):
            # Only to the staff member's own address: the email may hold a real lead's personal data.
            to = request.user.email
            if not to:
                self.message_user(
                    request,
                    "Your account has no email address to send the test to: ask an administrator to add one.",
                    messages.ERROR,
                )
            else:
                message.to_email = to
                email = build_email(message)
                email.subject = f"[TEST] {email.subject}"
                email.send()
                self.message_user(request, f"Test email sent to {to}.", messages.SUCCESS)
        subject, text, html = render_message(message)
        context.update(
            title=f"Preview: {step}",
            subject=subject,
            text=text,
            html=html,
            html_url=reverse("admin:nurture_flow_preview_email", args=[flow.pk, step.pk])
            + (f"?lead={lead.pk}" if lead else ""),
            lead=lead,
            default_to=request.user.email,
        )
        return TemplateResponse(request, "admin/nurture/flow/preview.html", context)


# The previewed email is a document of its own, framed by the preview page: emails carry their
# styles inline, so it may apply inline styles; it runs no script and loads nothing from another host.
EMAIL_PREVIEW_POLICY = {
    "default-src": [NONE],
    "style-src": [UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "script-src": [NONE],
    "form-action": [NONE],
    "frame-ancestors": [SELF],
}


class MoveToStepForm(forms.Form):
    step = forms.ModelChoiceField(queryset=FlowStep.objects.filter(is_retired=False).select_related("flow"))


@admin.register(Enrollment)
class EnrollmentAdmin(ModelAdmin):
    empty_hint = (
        "Nobody is in a nurture flow yet. Leads enter active flows as they are captured, or from the lead"
        " list's actions."
    )
    list_display = ("lead", "flow", "step", "status", "next_run_at", "entered_at", "exit_reason")
    list_filter = ("status", "flow", "exit_reason")
    list_select_related = ("lead", "flow", "step")
    search_fields = ("lead__email",)
    raw_id_fields = ("lead",)
    actions = ("pause", "resume", "remove", "move_to_step")
    readonly_fields = (
        "flow",
        "lead",
        "step",
        "status",
        "next_run_at",
        "entered_at",
        "left_at",
        "exit_reason",
        "waiting",
    )

    def has_add_permission(self, request):
        return False  # leads enter through triggers or "add to flow" on the lead list

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        self.message_user(request, f"{enrollments_pause(enrollments=queryset)} enrollment(s) paused.")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self.message_user(request, f"{enrollments_resume(enrollments=queryset)} enrollment(s) resumed.")

    @admin.action(description="Remove from the flow", permissions=["change"])
    def remove(self, request, queryset):
        self.message_user(request, f"{enrollments_remove(enrollments=queryset)} enrollment(s) removed.")

    @admin.action(description="Move to step…", permissions=["change"])
    def move_to_step(self, request, queryset):
        form = MoveToStepForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                moved = enrollments_move_to_step(enrollments=queryset, step=form.cleaned_data["step"])
            except ApplicationError as error:
                self.message_user(request, str(error), messages.ERROR)
                return None
            self.message_user(request, f"{moved} enrollment(s) moved.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Move enrollments to a step",
            "opts": self.model._meta,
            "form": form,
            "queryset": queryset,
            "action": "move_to_step",
        }
        return TemplateResponse(request, "admin/nurture/enrollment/move.html", context)


EMAIL_LENGTH = Suppression._meta.get_field("email").max_length or 254


class SuppressionImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with an email column (or emails in the first column).")


@admin.register(Suppression)
class SuppressionAdmin(HistoryNamesById, ModelAdmin):
    empty_hint = (
        "Nobody is suppressed. Unsubscribes and bounces land here; import a list of addresses never to "
        "email with Import."
    )
    list_display = ("email", "reason", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)
    actions = ("export_csv",)
    change_list_template = "admin/nurture/suppression/change_list.html"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            suppression = suppress(email=obj.email, reason=obj.reason)  # also takes the address out of flows
            obj.pk = suppression.pk if suppression is not None else None

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="suppression-list.csv"'
        writer = csv.writer(response)
        writer.writerow(["email", "reason", "created_at"])
        personal_data_read.send(
            sender=Suppression, user=request.user, kind="suppression_export", path=request.path, rows=queryset.count()
        )
        for row in queryset.values_list("email", "reason", "created_at").iterator():
            writer.writerow([spreadsheet_safe(row[0]), row[1], row[2].isoformat()])
        return response

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="nurture_suppression_import"),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                header, rows = read_csv_upload(form.cleaned_data["file"].read())
            except CsvUploadError as error:
                form.add_error("file", str(error))
            else:
                column = next((i for i, name in enumerate(header) if name.strip().lower() == "email"), None)
                names = header
                if column is None:  # no header: the first line is an address too
                    rows, column, names = [(1, header), *rows], 0, []
                emails, bad, refused = [], [], []
                for line, cells in rows:
                    problem = control_character_problem(cells, names)
                    email = normalise_email(cells[column]) if len(cells) > column else ""
                    if problem:  # never stored cleaned up: the line is named so staff can fix it
                        refused.append(f"line {line}, {problem}")
                    elif len(email) > EMAIL_LENGTH:
                        refused.append(f"line {line}, the address is longer than {EMAIL_LENGTH} characters")
                    elif "@" in email:
                        emails.append(email)
                    else:
                        bad.append(str(line))
                added = suppress_many(emails=emails, reason=Suppression.Reason.MANUAL)
                note = f" Lines without an address: {', '.join(bad[:20])}." if bad else ""
                if refused:
                    note += f" Not imported: {'; '.join(refused[:20])}. Fix those lines and import them again."
                self.message_user(
                    request, f"{added} address(es) suppressed.{note}", messages.WARNING if refused else messages.INFO
                )
                return redirect("admin:nurture_suppression_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import suppressed addresses",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/nurture/suppression/import.html", context)


@admin.register(NurtureMessage)
class NurtureMessageAdmin(ReadOnlyLogAdmin):
    list_display = ("lead", "step", "to_email", "status", "created_at", "sent_at", "opened_at", "clicked_at")
    list_filter = ("status",)
    list_select_related = ("lead", "step")
    search_fields = ("to_email",)


class AddToFlowForm(forms.Form):
    flow = forms.ModelChoiceField(queryset=Flow.objects.exclude(status=Flow.Status.ARCHIVED))


def add_to_flow(modeladmin, request, queryset):
    form = AddToFlowForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        added = leads_add_to_flow(flow=form.cleaned_data["flow"], leads=queryset, actor=request.user)
        skipped = queryset.count() - added
        modeladmin.message_user(
            request, f"{added} lead(s) added; {skipped} skipped (not allowed in flows, suppressed, or in it already)."
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Add leads to a nurture flow",
        "opts": modeladmin.model._meta,
        "form": form,
        "queryset": queryset,
        "action": "add_to_flow",
    }
    return TemplateResponse(request, "admin/nurture/enrollment/move.html", context)


STATIC_SIZE_NOTE = "Show size applies to segments only: a static list holds the leads flows add to it."


def size_sentence(size) -> str:
    text = f"This segment holds {size.leads} lead{pluralize(size.leads)} now, with the conditions as entered"
    text += " (not saved yet)."
    if size.left_out:
        text += (
            f" {size.matching} match{pluralize(size.matching, 'es,')} the conditions; {size.left_out} of them "
            f"{pluralize(size.left_out, 'is,are')} never in an audience: {size.suppressed} suppressed, "
            f"{size.no_consent} without marketing consent, {size.test} test, {size.duplicate} duplicate, "
            f"{size.invalid} invalid, {size.erased} erased (a lead may have more than one reason)."
        )
    return text


def lead_emails_and_flows(lead):
    """The lead page's "Emails and flows" tab: its enrollments and the emails they sent."""
    enrollments = list(lead.enrollments.select_related("flow", "step").order_by("entered_at"))
    messages_sent = list(lead.nurture_messages.select_related("step").order_by("created_at")[:50])
    if not enrollments and not messages_sent:
        return mark_safe('<p class="lc-empty">In no nurture flow. Add it to one from the lead list\'s actions.</p>')
    flows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                enrollment.flow.name,
                enrollment.get_status_display(),
                f"step {enrollment.step.position + 1}: {enrollment.step}" if enrollment.step else "—",
                enrollment.entered_at.date(),
            )
            for enrollment in enrollments
        ),
    )
    emails = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                message.step.subject,
                message.get_status_display(),
                message.sent_at.date() if message.sent_at else "—",
                "yes" if message.opened_at else "no",
                "yes" if message.clicked_at else "no",
            )
            for message in messages_sent
        ),
    )
    return format_html(
        '<h3 class="lc-subhead">Flows</h3><table class="lc-table"><thead><tr><th>Flow</th><th>Status</th>'
        "<th>Where</th><th>Entered</th></tr></thead><tbody>{}</tbody></table>"
        '<h3 class="lc-subhead">Emails</h3><table class="lc-table"><thead><tr><th>Subject</th><th>Status</th>'
        "<th>Sent</th><th>Opened</th><th>Clicked</th></tr></thead><tbody>{}</tbody></table>",
        flows,
        emails,
    )


# The lead list and page live in leads, which never imports nurture: nurture adds its action and its
# tab through the registry leads offers. The action is for whoever may put leads in flows
# (marketing, not sales reps).
register_lead_action(
    add_to_flow,
    description="Add to a nurture flow…",
    allowed=lambda request: request.user.has_perm("nurture.add_enrollment"),
)
register_lead_section("emails_and_flows", lead_emails_and_flows)


class AudienceExportInline(TabularInline):
    model = AudienceExport
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "format",
        "mode",
        "note",
        "status",
        "progress",
        "file_size",
        "checksum",
        "created_by",
        "download",
    )
    readonly_fields = fields

    @admin.display(description="Rows")
    def progress(self, export):
        running = export.status in (AudienceExport.Status.PENDING, AudienceExport.Status.RUNNING)
        return progress_html(done=export.rows, total=export.rows_total or export.rows, running=running)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="File")
    def download(self, export):
        if export.status != AudienceExport.Status.DONE:
            return export.error or ""
        if not export.file:
            return f"expired (kept {settings.AUDIENCE_EXPORT_RETENTION_DAYS} days): export again"
        return format_html('<a href="{}">download</a>', reverse("admin:nurture_audience_download", args=[export.pk]))


@admin.register(Audience)
class AudienceAdmin(LeadConditionsAdminMixin, ModelAdmin):
    empty_hint = (
        "No audiences yet. Add a segment of leads to export as a hashed retargeting audience (Meta, Google, DSPs)."
    )
    list_display = ("name", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    autocomplete_fields = ("offers", "campaigns")
    readonly_fields = ("live_size",)
    inlines = [AudienceExportInline]
    actions = ("export_meta", "export_google", "export_generic", "export_plain")
    fieldsets = (
        (None, {"fields": ("name", "kind", "live_size")}),
        (
            "Who is in it (segments; empty: anyone)",
            {
                "description": "Never included: suppressed, test, duplicate and invalid leads, and leads without "
                "marketing consent.",
                "fields": (
                    "offers",
                    "campaigns",
                    "traffic_source_kinds",
                    "lead_types",
                    "validities",
                    "qualifications",
                    "statuses",
                    "countries",
                    ("min_score", "max_score"),
                    "captured_within_days",
                    "engaged_not_converted",
                ),
            },
        ),
    )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # its offers and campaigns are saved by now
        audience_conditions_changed(audience=form.instance, changed=form.changed_data)

    @admin.display(description="Leads in it now")
    def live_size(self, audience):
        return audience_leads(audience).count() if audience.pk else "shown once saved (or: Show size)"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        # Offered while the form says "segment": a static list has no conditions to count.
        if "kind" in form.fields and form["kind"].value() == Audience.Kind.SEGMENT:
            size_url = reverse("admin:nurture_audience_size", args=[obj.pk]) if obj else None
            context["size_url"] = size_url or reverse("admin:nurture_audience_size_new")
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def size_view(self, request, object_id=None):
        """ "Show size": the form as filled in, validated, and how many leads the segment holds now,
        as JSON for the button beside Save. Nothing is saved: no audience, no change to this one, no
        offers or campaigns set (the form is only validated)."""
        if request.method != "POST":
            return JsonResponse({"text": "Post the audience form."}, status=405)
        obj = self.get_object(request, unquote(object_id)) if object_id else None
        if object_id and obj is None:
            raise Http404
        allowed = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        if not allowed:
            raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(request.POST, request.FILES, instance=obj)
        if not form.is_valid():
            errors = {field: [str(message) for message in messages_] for field, messages_ in form.errors.items()}
            text = "Please correct the errors below, then show the size."
            return JsonResponse({"text": text, "errors": errors}, status=400)
        if form.instance.kind != Audience.Kind.SEGMENT:
            return JsonResponse({"text": STATIC_SIZE_NOTE})
        chosen = form.cleaned_data
        size = audience_size(form.instance, offers=chosen["offers"], campaigns=chosen["campaigns"])
        return JsonResponse({**asdict(size), "left_out": size.left_out, "text": size_sentence(size)})

    def _export(self, request, queryset, format):
        try:
            for audience in queryset:
                audience_export_request(audience=audience, format=format, mode="full", user=request.user)
        except ApplicationError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"Export of {queryset.count()} audience(s) started; files appear on their pages.")

    @admin.action(description="Export for Meta (hashed)", permissions=["view"])
    def export_meta(self, request, queryset):
        self._export(request, queryset, AudienceExport.Format.META)

    @admin.action(description="Export for Google Customer Match (hashed)", permissions=["view"])
    def export_google(self, request, queryset):
        self._export(request, queryset, AudienceExport.Format.GOOGLE)

    @admin.action(description="Export hashed email and phone (DSPs)", permissions=["view"])
    def export_generic(self, request, queryset):
        self._export(request, queryset, AudienceExport.Format.GENERIC)

    @admin.action(description="Export unhashed CSV (needs permission)", permissions=["view"])
    def export_plain(self, request, queryset):
        self._export(request, queryset, AudienceExport.Format.PLAIN)

    def get_urls(self):
        size = self.admin_site.admin_view(self.size_view)
        return [
            path("size/", size, name="nurture_audience_size_new"),
            path("<path:object_id>/size/", size, name="nurture_audience_size"),
            path(
                "exports/<int:export_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="nurture_audience_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, export_id):
        # An expired export's file is gone (retention): nothing to download.
        export = get_object_or_404(
            AudienceExport.objects.exclude(file=""), pk=export_id, status=AudienceExport.Status.DONE
        )
        allowed = self.has_view_permission(request, export.audience) and (
            export.format != AudienceExport.Format.PLAIN or request.user.has_perm("nurture.export_plain_audience")
        )
        if not allowed:
            raise PermissionDenied
        personal_data_read.send(
            sender=AudienceExport, user=request.user, kind="audience_download", path=request.path, rows=export.rows
        )
        response = FileResponse(
            export.file.open("rb"), as_attachment=True, filename=f"{export.audience.name}-{export.format}.csv"
        )
        response["Cache-Control"] = "no-store"
        return response

"""Lead CSV imports: upload, queued run, report download."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from leadcrm.errors import ApplicationError
from leadcrm.progress import progress_html

from ..models import (
    LeadImport,
)
from ..services.lead_import import LeadImportError, lead_import_enqueue, lead_import_send_again


class LeadImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with campaign (slug), email and/or phone, and any other lead columns.")


@admin.register(LeadImport)
class LeadImportAdmin(ModelAdmin):
    empty_hint = (
        "No imports yet. Upload a CSV of leads with Add: each row is checked, and a report lists what happened to it."
    )
    list_display = (
        "file_name",
        "created_at",
        "created_by",
        "status",
        "progress",
        "created_leads",
        "already_imported",
        "rejected",
        "report_link",
    )
    list_select_related = ("created_by",)
    readonly_fields = (
        "file_name",
        "checksum",
        "created_by",
        "created_at",
        "status",
        "progress",
        "created_leads",
        "already_imported",
        "rejected",
        "report_link",
    )
    exclude = ("report_csv", "file", "rows", "rows_done")
    actions = ("run_again",)

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="leads_leadimport_upload"),
            path("<int:pk>/report.csv", self.admin_site.admin_view(self.report_view), name="leads_leadimport_report"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:leads_leadimport_upload")

    @admin.action(description="Run again (rows already imported are skipped)", permissions=["add"])
    def run_again(self, request, queryset):
        for lead_import in queryset:
            try:
                lead_import_send_again(lead_import=lead_import)
            except ApplicationError as error:
                self.message_user(request, f"{lead_import}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{lead_import}: queued again.", messages.SUCCESS)

    @admin.display(description="Progress")
    def progress(self, lead_import):
        running = lead_import.status in (LeadImport.Status.QUEUED, LeadImport.Status.RUNNING)
        return progress_html(done=lead_import.rows_done, total=lead_import.rows, running=running)

    @admin.display(description="Report")
    def report_link(self, lead_import):
        if not lead_import.pk:
            return "—"
        return format_html(
            '<a href="{}">Download report (CSV)</a>', reverse("admin:leads_leadimport_report", args=[lead_import.pk])
        )

    def upload_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = LeadImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = lead_import_enqueue(data=upload.read(), file_name=upload.name, created_by=request.user)
            except LeadImportError as error:
                form.add_error("file", str(error))
            else:
                self.message_user(
                    request,
                    f"{result.rows} rows queued for import; this page shows how far it has got.",
                    messages.SUCCESS,
                )
                return redirect("admin:leads_leadimport_change", result.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import leads from CSV",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/leads/leadimport/upload.html", context)

    def report_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        lead_import = get_object_or_404(LeadImport, pk=pk)
        response = HttpResponse(lead_import.report_csv, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="lead-import-{pk}-report.csv"'
        return response

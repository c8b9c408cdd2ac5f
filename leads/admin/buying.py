"""Suppliers' inbound pings (a log) and buyers' suppression lists (uploaded here for buyers without
the API: a CSV of hashes, or of plain emails and phones hashed on upload and never stored)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from unfold.admin import ModelAdmin

from campaigns.models import Advertiser
from campaigns.visitor import validate_country_codes
from leadcrm.admin_logs import ReadOnlyLogAdmin
from leadcrm.csv_upload import CsvUploadError, read_csv_upload

from ..models import BuyerSuppression, SupplierPing
from ..services.suppression import buyer_suppression_add, buyer_suppression_remove, suppression_file_read


@admin.register(SupplierPing)
class SupplierPingAdmin(ReadOnlyLogAdmin):
    empty_hint = (
        "No pings yet. Suppliers ask what a lead is worth with POST /api/v1/ping/ before they post it; "
        "give a supplier a payout on a campaign (Partners) so its pings get a price."
    )
    list_display = ("created_at", "partner", "campaign", "country", "lead_type", "price", "currency", "refusal", "lead")
    list_filter = ("refusal", "is_test", "partner")
    list_select_related = ("partner", "campaign", "lead")
    search_fields = ("=public_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False


class SuppressionUploadForm(forms.Form):
    buyer = forms.ModelChoiceField(queryset=Advertiser.objects.order_by("name"))
    file = forms.FileField(
        help_text="CSV with a header: sha256_email and/or sha256_phone (hashes, as our generic audience export "
        "writes them), or email and/or phone (plain values, hashed here and never stored), and an optional "
        "country for phones written without their +country code."
    )
    default_country = forms.CharField(
        required=False,
        max_length=2,
        help_text="ISO code for plain phones without +country code and without a country column, e.g. US.",
    )
    remove = forms.BooleanField(required=False, label="Remove these from the list instead of adding them")

    def clean_default_country(self) -> str:
        code = self.cleaned_data["default_country"].strip().upper()
        if code:
            validate_country_codes([code])
        return code


@admin.register(BuyerSuppression)
class BuyerSuppressionAdmin(ModelAdmin):
    empty_hint = (
        "No buyer has a suppression list. Buyers upload the hashed emails and phones of people never to be "
        "sent to them through the API (POST /api/v1/buyer/suppression/); for others, use Upload CSV."
    )
    list_display = ("advertiser", "kind", "hash", "created_at")
    list_filter = ("kind", ("advertiser", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("advertiser",)
    search_fields = ("=hash",)  # exact: a hash is looked up, never searched inside
    show_full_result_count = False
    change_list_template = "admin/leads/buyersuppression/change_list.html"
    actions = ("delete_selected",)

    def has_add_permission(self, request):
        return False  # through Upload CSV, which checks and hashes what it is given

    def has_change_permission(self, request, obj=None):
        return False  # a hash is added or removed, never edited

    def get_urls(self):
        upload = self.admin_site.admin_view(self.upload_view)
        return [path("upload/", upload, name="leads_buyersuppression_upload"), *super().get_urls()]

    def upload_view(self, request):
        if not request.user.has_perm("leads.add_buyersuppression"):
            return redirect("admin:index")
        form = SuppressionUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                header, rows = read_csv_upload(form.cleaned_data["file"].read())
            except CsvUploadError as error:
                form.add_error("file", str(error))
            else:
                found = suppression_file_read(
                    header=header, rows=rows, default_country=form.cleaned_data["default_country"]
                )
                if found.refused and not any(found.hashes_by_kind.values()):
                    form.add_error("file", "Nothing could be read: " + "; ".join(found.refused[:20]))
                else:
                    return self._apply(request, form.cleaned_data, found)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a buyer's suppression list",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/leads/buyersuppression/upload.html", context)

    def _apply(self, request, data, found):
        buyer, removing = data["buyer"], data["remove"]
        if removing and not request.user.has_perm("leads.delete_buyersuppression"):
            raise PermissionDenied
        if removing:
            count = buyer_suppression_remove(advertiser=buyer, hashes_by_kind=found.hashes_by_kind)
            message = f"{count} hash(es) removed from {buyer}'s list."
        else:
            count = buyer_suppression_add(advertiser=buyer, hashes_by_kind=found.hashes_by_kind)
            message = f"{count} hash(es) added to {buyer}'s list (those already on it are left as they were)."
        if found.refused:
            more = f" and {len(found.refused) - 20} more" if len(found.refused) > 20 else ""
            message += f" Not read: {'; '.join(found.refused[:20])}{more}. Fix those lines and upload them again."
        self.message_user(request, message, messages.WARNING if found.refused else messages.SUCCESS)
        return redirect("admin:leads_buyersuppression_changelist")

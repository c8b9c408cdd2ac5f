"""Admin for money: buyers' accounts (balance, credit limit, payments), the ledger and statements."""

import csv
import datetime
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from unfold.admin import ModelAdmin

from campaigns.models import Advertiser, validate_currency
from leadcrm.admin_logs import ReadOnlyLogAdmin
from leadcrm.errors import ApplicationError
from leadcrm.spreadsheets import spreadsheet_safe

from ..models import BuyerAccount, LedgerEntry, Partner
from ..selectors import buyer_accounts_with_balance, statement
from ..services.accounts import buyer_account_save, buyer_payment_record
from ..services.ledger import buyer_balance, ledger_record_payment


class PaymentForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    reference = forms.CharField(
        max_length=80, required=False, help_text="The bank transfer's id: the same reference is never counted twice."
    )
    note = forms.CharField(max_length=300, required=False)


@admin.register(BuyerAccount)
class BuyerAccountAdmin(ModelAdmin):
    list_display = ("advertiser", "currency", "balance_display", "credit_limit", "available", "statement_link")
    list_filter = ("currency",)
    list_select_related = ("advertiser",)
    search_fields = ("advertiser__name",)
    autocomplete_fields = ("advertiser",)
    fields = ("advertiser", "currency", "credit_limit", "balance_display")
    readonly_fields = ("balance_display",)

    def get_readonly_fields(self, request, obj=None):
        # An account keeps its buyer and currency: its balance is theirs.
        return ("advertiser", "currency", "balance_display") if obj else ("balance_display",)

    def get_queryset(self, request):
        return buyer_accounts_with_balance(super().get_queryset(request))

    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, account):
        return "—" if account.pk is None else f"{account.balance:,.2f}"

    @admin.display(description="Available")
    def available(self, account):
        return f"{account.balance + account.credit_limit:,.2f}"

    @admin.display(description="Statement")
    def statement_link(self, account):
        url = reverse("admin:leads_ledgerentry_statement")
        return _link(f"{url}?advertiser={account.advertiser_id}&currency={account.currency}", "Statement")

    def save_model(self, request, obj, form, change):
        released = buyer_account_save(account=obj)
        if released:
            self.message_user(request, f"{released} held lead(s) of this buyer will be routed again now.")

    def get_urls(self):
        urls = [
            path(
                "<int:account_id>/payment/",
                self.admin_site.admin_view(self.payment_view),
                name="leads_buyeraccount_payment",
            )
        ]
        return urls + super().get_urls()

    @admin.action(description="Record a payment from the buyer (select one account)", permissions=["change"])
    def record_payment(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one account.", messages.WARNING)
            return None
        return redirect("admin:leads_buyeraccount_payment", queryset.get().pk)

    actions = ("record_payment",)

    def payment_view(self, request, account_id: int):
        account = BuyerAccount.objects.select_related("advertiser").filter(pk=account_id).first()
        if account is None or not self.has_change_permission(request, account):
            raise PermissionDenied
        form = PaymentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                released = buyer_payment_record(
                    account=account,
                    amount=form.cleaned_data["amount"],
                    reference=form.cleaned_data["reference"],
                    note=form.cleaned_data["note"],
                    user=request.user,
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request,
                    f"Payment of {form.cleaned_data['amount']} {account.currency} recorded; "
                    f"{released} held lead(s) of this buyer will be routed again now.",
                )
                return redirect("admin:leads_buyeraccount_changelist")
        balance = buyer_balance(account.advertiser_id, account.currency)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Payment from {account.advertiser} ({account.currency})",
            "opts": self.model._meta,
            "form": form,
            "intro": f"Balance now {balance:,.2f} {account.currency}, credit limit {account.credit_limit:,.2f}. "
            "A payment raises the balance; leads held at this buyer's limit are routed again at once.",
        }
        return TemplateResponse(request, "admin/leads/payment.html", context)


def _link(url: str, text: str):
    from django.utils.html import format_html

    return format_html('<a href="{}">{}</a>', url, text)


class StatementForm(forms.Form):
    advertiser = forms.ModelChoiceField(Advertiser.objects.all(), required=False, label="Buyer")
    partner = forms.ModelChoiceField(Partner.objects.all(), required=False, label="Supplier")
    currency = forms.CharField(max_length=3, initial="USD", validators=[validate_currency])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: from the first of this month to today.",
    )

    def clean_currency(self):
        return self.cleaned_data["currency"].upper()

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if bool(data.get("advertiser")) == bool(data.get("partner")):
            raise forms.ValidationError("Choose a buyer or a supplier.")
        today = timezone.localdate()
        data["date_from"] = data.get("date_from") or today.replace(day=1)
        data["date_to"] = data.get("date_to") or today
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The period ends before it starts.")
        return data


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyLogAdmin):
    list_display = ("created_at", "day", "kind", "amount_display", "currency", "lead", "advertiser", "partner")
    list_filter = ("kind", "currency", "advertiser", "partner", ("day", admin.DateFieldListFilter))
    list_select_related = ("lead", "advertiser", "partner")
    search_fields = ("key", "lead__public_id", "note")
    date_hierarchy = "created_at"
    change_list_template = "admin/leads/ledgerentry/change_list.html"

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, entry):
        return f"{entry.amount:+,.2f}"

    def get_urls(self):
        urls = [
            path(
                "statement/",
                self.admin_site.admin_view(self.statement_view),
                name="leads_ledgerentry_statement",
            )
        ]
        return urls + super().get_urls()

    def statement_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = StatementForm(request.GET or None)
        found = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            found = statement(
                advertiser=data["advertiser"],
                partner=data["partner"],
                currency=data["currency"],
                date_from=data["date_from"],
                date_to=data["date_to"],
            )
            if request.GET.get("format") == "csv":
                return _statement_csv(found)
        context = {
            **self.admin_site.each_context(request),
            "title": "Statement",
            "opts": self.model._meta,
            "form": form,
            "statement": found,
            "csv_query": request.GET.urlencode() + "&format=csv" if found else "",
        }
        return TemplateResponse(request, "admin/leads/ledgerentry/statement.html", context)


def _statement_csv(found: dict) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"statement-{found['name']}-{found['date_from']:%Y%m%d}-{found['date_to']:%Y%m%d}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
    writer = csv.writer(response)
    writer.writerow(["booked_at", "day", "kind", "lead", "campaign", "note", "amount", "balance", "currency"])
    writer.writerow(["", "", "opening balance", "", "", "", "", f"{found['opening']:.2f}", found["currency"]])
    for line in found["lines"]:
        entry = line["entry"]
        writer.writerow(
            [
                timezone.localtime(entry.created_at).isoformat(timespec="seconds"),
                entry.day.isoformat() if isinstance(entry.day, datetime.date) else entry.day,
                entry.get_kind_display(),
                str(entry.lead.public_id) if entry.lead_id else "",
                spreadsheet_safe(entry.campaign.name) if entry.campaign_id else "",
                spreadsheet_safe(entry.note),
                f"{line['change']:.2f}",
                f"{line['balance']:.2f}",
                entry.currency,
            ]
        )
    writer.writerow(["", "", "closing balance", "", "", "", "", f"{found['closing']:.2f}", found["currency"]])
    return response


class SupplierPaymentForm(PaymentForm):
    currency = forms.CharField(max_length=3, initial="USD", validators=[validate_currency])

    def clean_currency(self):
        return self.cleaned_data["currency"].upper()


def supplier_payment_view(model_admin, request, partner_id: int):
    """Record money paid to a supplier (PartnerAdmin mounts it): its statement's balance goes down."""
    partner = Partner.objects.filter(pk=partner_id).first()
    if partner is None or not partner.is_supplier or not model_admin.has_change_permission(request, partner):
        raise PermissionDenied
    form = SupplierPaymentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ledger_record_payment(
                partner=partner,
                amount=data["amount"],
                currency=data["currency"],
                reference=data["reference"],
                note=data["note"],
                user=request.user,
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            model_admin.message_user(request, f"Payment of {data['amount']} {data['currency']} to {partner} recorded.")
            return redirect("admin:leads_partner_changelist")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Payment to {partner}",
        "opts": model_admin.model._meta,
        "form": form,
        "intro": "Money paid to this supplier for its leads; it lowers what we owe it (see its statement).",
    }
    return TemplateResponse(request, "admin/leads/payment.html", context)

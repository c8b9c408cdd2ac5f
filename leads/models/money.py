"""Money: what buyers pay per lead, what suppliers earn, buyers' accounts and the append-only ledger.

Every amount that moves is one LedgerEntry; reports, statements and balances add entries up.
"""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import MONEY, DecimalOptions, LeadType, validate_currency
from campaigns.visitor import validate_country_codes
from leadcrm.errors import ApplicationError

SIGNED_MONEY: DecimalOptions = {"max_digits": 16, "decimal_places": 4}  # ledger amounts: spend has fractions of a cent


class RoutePrice(models.Model):
    """A buyer's price for some of an offer's leads: those of a country, of a lead type, or both."""

    route = models.ForeignKey("leads.DeliveryRoute", on_delete=models.CASCADE, related_name="prices")
    country = models.CharField(max_length=2, blank=True, help_text="ISO code, e.g. US. Empty: any country.")
    lead_type = models.CharField(max_length=4, choices=LeadType.choices, blank=True, help_text="Empty: any type.")
    price = models.DecimalField(help_text="In the offer's currency.", **MONEY)

    class Meta:
        ordering = ["route", "country", "lead_type"]
        constraints = [
            models.UniqueConstraint(fields=["route", "country", "lead_type"], name="route_price_unique_match"),
            models.CheckConstraint(condition=~Q(country="", lead_type=""), name="route_price_names_what_it_prices"),
        ]

    def __str__(self) -> str:
        what = " ".join(filter(None, [self.country, self.get_lead_type_display() if self.lead_type else ""]))
        return f"{what}: {self.price}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        self.country = self.country.strip().upper()
        if self.country:
            validate_country_codes([self.country])
        if not self.country and not self.lead_type:
            raise ValidationError("Give a country, a lead type or both; the route's own price covers the rest.")


class SupplierPayout(models.Model):
    """What a supplier partner earns per lead it sends to a campaign, and which leads earn it."""

    class Basis(models.TextChoices):
        VALID = "valid", "Every valid lead"
        QUALIFIED = "qualified", "Every qualified lead"
        SOLD = "sold", "Every lead a buyer accepts"

    partner = models.ForeignKey("leads.Partner", on_delete=models.CASCADE, related_name="payouts")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    amount = models.DecimalField(help_text="Per lead.", **MONEY)
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    basis = models.CharField(
        "earned by", max_length=9, choices=Basis.choices, default=Basis.VALID, help_text="Which leads earn it."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["partner", "campaign"]
        constraints = [models.UniqueConstraint(fields=["partner", "campaign"], name="payout_once_per_campaign")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} per {self.basis} lead"

    def clean(self) -> None:
        self.currency = (self.currency or "").upper()


class BuyerAccount(models.Model):
    """An advertiser's account in one currency: how far below zero its balance (payments in less what it
    was charged, added up from the ledger) may go. A buyer without an account has no limit (invoiced)."""

    advertiser = models.ForeignKey("campaigns.Advertiser", on_delete=models.CASCADE, related_name="accounts")
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    credit_limit = models.DecimalField(
        default=0,
        help_text="How far below zero the balance may go. 0: prepaid, leads only while money is left.",
        **MONEY,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["advertiser", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "currency"], name="buyer_account_once_per_currency")
        ]

    def __str__(self) -> str:
        return f"{self.advertiser} ({self.currency})"

    def clean(self) -> None:
        self.currency = (self.currency or "").upper()


class AppendOnly(ApplicationError):
    """A ledger entry was to be changed or deleted: money is corrected by a new entry instead."""


class LedgerQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Ledger entries are never changed: post a correcting entry.")

    def delete(self):
        raise AppendOnly("Ledger entries are never deleted: post a correcting entry.")


class LedgerEntry(models.Model):
    """One amount of money that moved. Revenue and cost kinds are signed for the company's P&L
    (+ earned, - spent or owed); payments are the positive amount paid and move balances only.

    Append-only: a correction is a new entry. `key` is unique and names the event (a delivery's sale,
    a lead's payout, the n-th correction of a day's spend), so a job that runs twice posts nothing new.
    `day` is the day the amount counts for in reports (the lead's capture day, the spend's day);
    `created_at` is when it was booked, which statements go by.
    """

    class Kind(models.TextChoices):
        LEAD_SOLD = "lead_sold", "Lead sold"
        LEAD_RETURNED = "lead_returned", "Lead returned"
        SALE_COMMISSION = "sale_commission", "Sale commission"
        SALE_REVERSED = "sale_reversed", "Sale commission reversed"
        PAYOUT_EARNED = "payout_earned", "Supplier payout earned"
        PAYOUT_REVERSED = "payout_reversed", "Supplier payout reversed"
        MEDIA_SPEND = "media_spend", "Media spend"
        BUYER_PAYMENT = "buyer_payment", "Payment from buyer"
        SUPPLIER_PAYMENT = "supplier_payment", "Payment to supplier"

    key = models.CharField(max_length=120, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.DecimalField(**SIGNED_MONEY)
    currency = models.CharField(max_length=3)
    day = models.DateField(help_text="The day it counts for in reports.")
    created_at = models.DateTimeField("booked at", default=timezone.now)
    payable_at = models.DateTimeField(
        null=True, blank=True, help_text="Supplier payouts: payable once the offer's return window has passed."
    )
    lead = models.ForeignKey("leads.Lead", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    delivery = models.ForeignKey("leads.Delivery", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    partner = models.ForeignKey(
        "leads.Partner",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger",
        help_text="The supplier, for payouts.",
    )
    advertiser = models.ForeignKey(
        "campaigns.Advertiser",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger",
        help_text="The buyer, for sales, returns, commissions and payments.",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    offer = models.ForeignKey("campaigns.Offer", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    traffic_source = models.ForeignKey(
        "campaigns.TrafficSource", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = LedgerQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["day", "campaign"], name="ledger_day_campaign"),
            models.Index(fields=["advertiser", "currency", "created_at"], name="ledger_buyer_time"),
            models.Index(fields=["partner", "currency", "created_at"], name="ledger_supplier_time"),
            models.Index(fields=["lead", "kind"], name="ledger_lead_kind"),
            models.Index(fields=["campaign", "day"], name="ledger_campaign_day", condition=Q(kind="media_spend")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+.2f} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("Ledger entries are never changed: post a correcting entry.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Ledger entries are never deleted: post a correcting entry.")


# What each kind does to a counterparty's balance, as a multiple of the entry's amount. A buyer's
# balance: payments in, minus what it was charged (our sales and commissions), plus refunds. A
# supplier's balance: what we owe it (payouts earned, less reversals and payments made).
BUYER_BALANCE_SIGN: dict[str, int] = {
    LedgerEntry.Kind.BUYER_PAYMENT: 1,
    LedgerEntry.Kind.LEAD_SOLD: -1,
    LedgerEntry.Kind.LEAD_RETURNED: -1,
    LedgerEntry.Kind.SALE_COMMISSION: -1,
    LedgerEntry.Kind.SALE_REVERSED: -1,
}
SUPPLIER_BALANCE_SIGN: dict[str, int] = {
    LedgerEntry.Kind.PAYOUT_EARNED: -1,
    LedgerEntry.Kind.PAYOUT_REVERSED: -1,
    LedgerEntry.Kind.SUPPLIER_PAYMENT: -1,
}

"""Buying and selling around the pipeline: a supplier's inbound ping (a price quoted before it posts
a lead) and a buyer's suppression list (hashed contacts it never wants to be sent)."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import MONEY, LeadType


class SupplierPing(models.Model):
    """A supplier asked what we pay for a lead with these non-identifying fields; we quoted a price
    (or refused, with the reason). A lead posted with `public_id` before `expires_at` is bought at
    `price`, once: `lead` is set in the lead's own transaction."""

    public_id = models.UUIDField("ping id", default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey("leads.Partner", on_delete=models.CASCADE, related_name="pings")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    is_test = models.BooleanField(default=False, help_text="Pinged with a sandbox key.")
    fields = models.JSONField(default=dict, blank=True, help_text="The non-identifying fields as pinged.")
    # What the price depends on, normalised as the pipeline will read the lead (compared at the post).
    country = models.CharField(max_length=2, blank=True)
    lead_type = models.CharField(max_length=4, choices=LeadType.choices, blank=True)
    price = models.DecimalField(null=True, blank=True, help_text="Empty: refused.", **MONEY)
    currency = models.CharField(max_length=3, blank=True)
    basis = models.CharField("earned by", max_length=9, blank=True, help_text="Which leads earn the price.")
    refusal = models.CharField(max_length=40, blank=True, help_text="Why no price was quoted (a code).")
    refusal_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    lead = models.OneToOneField(
        "leads.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="supplier_ping"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "inbound ping"
        indexes = [
            models.Index(fields=["partner", "created_at"], name="ping_partner_time"),
            # The hourly purge of unused pings (leads.services.inbound_ping.supplier_pings_purge).
            models.Index(fields=["expires_at"], condition=Q(lead__isnull=True), name="ping_unused_expiry"),
        ]

    def __str__(self) -> str:
        quoted = f"{self.price} {self.currency}" if self.price is not None else f"refused ({self.refusal})"
        return f"{self.public_id} {quoted}"


class BuyerSuppression(models.Model):
    """One hashed email or phone a buyer (an advertiser) never wants to be sent: its own customers or
    its do-not-contact list. Hashed exactly as the audience exports hash (leads.services.contact_hashes),
    so a buyer can upload an export of ours, or its own list hashed the same way."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"

    advertiser = models.ForeignKey(
        "campaigns.Advertiser", on_delete=models.CASCADE, related_name="suppressions", verbose_name="buyer"
    )
    kind = models.CharField(max_length=5, choices=Kind.choices)
    hash = models.CharField("SHA-256", max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["advertiser_id", "kind", "hash"]  # the index's order, not the advertiser's name
        verbose_name = "buyer suppression"
        constraints = [
            # Also the index every lookup uses: (buyer, kind, hash) is one probe per contact, whatever
            # the list's size, and counting a buyer's list reads only this index.
            models.UniqueConstraint(fields=["advertiser", "kind", "hash"], name="buyer_suppression_unique_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.hash[:12]}…"

"""The auction log: every ping/post auction of a lead, who was asked, what each answered, who won
at what price and what the winner's post answered (leads.services.auction runs them)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from campaigns.models import MONEY, Offer

from .delivery import Delivery, DeliveryDestination, DeliveryRoute
from .leads import Lead


class Auction(models.Model):
    """One auction of one lead: its buyers were pinged at once, the bids ranked, the lead posted down
    the ranking until sold (to one buyer, or to up to N for a shared offer) or out of time."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SOLD = "sold", "Sold"
        UNSOLD = "unsold", "Unsold"  # no bid at or above the floor, or every bidder rejected the post
        EXPIRED = "expired", "Expired"  # the waterfall stopped at the offer's maximum lead age
        INTERRUPTED = "interrupted", "Interrupted"  # the worker stopped mid-auction; a new one ran

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="auctions")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=11, choices=Status.choices, default=Status.RUNNING)
    note = models.CharField(max_length=300, blank=True, help_text="Why it ended as it did.")
    floor_price = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    buyers_wanted = models.PositiveSmallIntegerField(default=1, help_text="1: exclusive; more: shared.")
    buyers_pinged = models.PositiveSmallIntegerField(default=0)
    sold_count = models.PositiveSmallIntegerField(default=0)
    price = models.DecimalField(
        null=True, blank=True, help_text="What the winners pay, together (each at its own bid).", **MONEY
    )
    winner = models.ForeignKey(
        DeliveryDestination,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The highest bidder that took the lead (the first of them, for a shared sale).",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ping_ms = models.PositiveIntegerField(null=True, blank=True, help_text="From the first ping to the last answer.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="From the first ping to the end.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The staff user who ran it again; empty when it ran for a new lead.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="auction_newest_first"),
            models.Index(fields=["lead", "started_at"], name="auction_lead_time"),
            models.Index(fields=["status", "-started_at"], name="auction_status_time"),
        ]

    def __str__(self) -> str:
        return f"Auction of lead {self.lead_id} ({self.get_status_display().lower()})"


class AuctionBid(models.Model):
    """One buyer in one auction: its ping and answer (or its fixed price), and its post if it won."""

    class Outcome(models.TextChoices):
        BID = "bid", "Bid"
        FIXED = "fixed", "Fixed price"  # a buyer on a fixed route takes part with its price, unpinged
        REJECTED = "rejected", "Declined to bid"
        TIMEOUT = "timeout", "Timed out"
        ERROR = "error", "Error"

    class Post(models.TextChoices):
        NOT_POSTED = "", "Not posted"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected the post"
        FAILED = "failed", "Post failed"
        BELOW_FLOOR = "below_floor", "Below the floor"
        SKIPPED = "skipped", "Skipped"  # its cap, its credit, or it already has the lead
        EXPIRED = "expired", "Lead too old"

    auction = models.ForeignKey(Auction, on_delete=models.CASCADE, related_name="bids")
    destination = models.ForeignKey(DeliveryDestination, on_delete=models.PROTECT, related_name="+")
    route = models.ForeignKey(DeliveryRoute, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    amount = models.DecimalField(null=True, blank=True, **MONEY)
    bid_id = models.CharField("bid id", max_length=200, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why no bid, or the error.")
    rank = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Its place in the waterfall (1: best).")
    post_outcome = models.CharField(max_length=11, choices=Post.choices, blank=True)
    post_reason = models.CharField(max_length=500, blank=True)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["auction", "rank", "id"]
        constraints = [models.UniqueConstraint(fields=["auction", "destination"], name="bid_once_per_auction")]

    def __str__(self) -> str:
        amount = f" {self.amount}" if self.amount is not None else ""
        return f"{self.get_outcome_display()}{amount}"

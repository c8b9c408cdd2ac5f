"""Delivery to buyers (destinations, their signing secrets, routes, deliveries), postbacks to traffic
sources, notifications to suppliers, and the log of every attempt."""

import uuid
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import MONEY, Advertiser, LeadType, Offer, PostbackEvent
from leadcrm.fields import StringListField

from .leads import Lead
from .partners import Partner

# Lead fields a buyer's mapping may use (what our standard delivery JSON holds).
MAPPABLE_FIELDS = (
    "id",
    "created_at",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "company_size",
    "budget",
    "country",
    "zip_code",
    "message",
    "answers",
    "lead_type",
    "qualification",
    "score",
    "campaign",
    "offer",
    "traffic_source_kind",
    "click_id",
    "sub_ids",
    "consent",
    "consent_text",
    "consent_at",
    "consent_certificate_id",
    "consent_certificate_url",
    "third_party_consent_id",
    "ip",
    "user_agent",
)
# What a ping/post buyer may be told before it buys: fields that identify nobody. A ping never holds
# the email, phone, name, address, IP or anything typed freely (leads.services.ping_post builds it).
PING_FIELDS = (
    ("country", "Country"),
    ("region", "Region (the answer to a question keyed region or state)"),
    ("zip_prefix", "ZIP prefix (first 3 characters)"),
    ("lead_type", "Lead type"),
    ("lead_age", "Lead age (seconds)"),
    ("score_band", "Score band (0-19 ... 80-100)"),
    ("offer", "Offer"),
    ("answers", "Chosen quiz answers"),
)
PHONE_FORMATS = ("e164", "e164_digits", "national", "international", "digits")
TEXT_TRANSFORMS = ("lower", "upper")


def validate_field_mapping(mapping) -> None:
    """{"their_field": "our_field" | {"field": "phone", "format": "national"} | {"value": "constant"}}."""
    example = (
        'e.g. {"email_address": "email", "tel": {"field": "phone", "format": "national"}, "source": {"value": "acme"}}'
    )
    if not isinstance(mapping, dict):
        raise ValidationError(f"Map their field names to ours, {example}.")
    problems = []
    for theirs, spec in mapping.items():
        if isinstance(spec, str):
            spec = {"field": spec}
        if not isinstance(spec, dict) or not ({"field", "value"} & spec.keys()):
            problems.append(f'{theirs}: give a field name or {{"value": ...}}')
            continue
        field, transform = spec.get("field"), spec.get("format", "")
        if field is not None and field not in MAPPABLE_FIELDS:
            problems.append(f"{theirs}: unknown field {field!r}")
        if transform and transform not in (*PHONE_FORMATS, *TEXT_TRANSFORMS):
            problems.append(f"{theirs}: unknown format {transform!r}")
        if transform in PHONE_FORMATS and field != "phone":
            problems.append(f"{theirs}: phone formats apply to the phone field only")
    if problems:
        raise ValidationError(
            "%(problems)s. Known fields: %(fields)s. Formats: %(formats)s.",
            params={
                "problems": "; ".join(problems),
                "fields": ", ".join(MAPPABLE_FIELDS),
                "formats": ", ".join((*PHONE_FORMATS, *TEXT_TRANSFORMS)),
            },
        )


def validate_headers(headers) -> None:
    reserved = {"host", "content-length", "content-type", "authorization", "webhook-id", "webhook-timestamp"}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValidationError('Give headers as {"X-Name": "value"}.')
    taken = sorted(name for name in headers if name.lower() in reserved or name.lower() == "webhook-signature")
    if taken:
        raise ValidationError(f"Set by leadcrm itself, not here: {', '.join(taken)}.")
    if any("\n" in f"{k}{v}" or "\r" in f"{k}{v}" for k, v in headers.items()):
        raise ValidationError("Header names and values cannot contain line breaks.")


class DeliveryDestination(models.Model):
    """Where a buyer (advertiser) receives its leads: an HTTP endpoint or a sales inbox."""

    class Kind(models.TextChoices):
        JSON = "json", "HTTP POST, JSON body"
        FORM = "form", "HTTP POST, form fields"
        EMAIL = "email", "Email to a sales inbox"
        PING_POST = "ping", "Ping/post: bids on each lead, receives what it wins"

    class Auth(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "Basic (user name and password)"
        BEARER = "bearer", "Bearer token"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="delivery_destinations")
    name = models.CharField(max_length=120, help_text="e.g. Acme CRM production.")
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.JSON)
    url = models.URLField("URL", max_length=2000, blank=True, help_text="For HTTP destinations.")
    email_to = StringListField(help_text="For email destinations: the sales inbox(es).")
    field_mapping = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_field_mapping],
        help_text='Their field -> ours. e.g. {"email_address": "email", "tel": {"field": "phone", "format": '
        '"national"}, "source": {"value": "acme"}}. Empty: our standard lead JSON.',
    )
    headers = models.JSONField(default=dict, blank=True, validators=[validate_headers], help_text='{"X-Name": "value"}')
    auth = models.CharField(max_length=6, choices=Auth.choices, default=Auth.NONE)
    auth_username = models.CharField(max_length=200, blank=True)
    auth_secret_encrypted = models.TextField(blank=True, editable=False)
    accept_json_path = models.CharField(
        "accepted when JSON path",
        max_length=200,
        blank=True,
        help_text="Besides a 2xx status, the answer's field that says accepted, e.g. status or result.accepted. "
        "Empty: any 2xx is accepted.",
    )
    accept_json_value = models.CharField(
        "equals", max_length=200, blank=True, help_text="e.g. accepted, ok or true (compared as text)."
    )
    reason_json_path = models.CharField(
        "rejection reason JSON path", max_length=200, blank=True, help_text="e.g. reason or errors.0.message."
    )
    reference_json_path = models.CharField(
        "buyer's lead id JSON path", max_length=200, blank=True, help_text="e.g. id or data.lead_id."
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(30)], help_text="Per request, 1-30 s."
    )
    follow_redirects = models.BooleanField(
        default=False,
        help_text="Off: a redirect answer is a failure. On: up to 3, each checked like the URL; a moved "
        "address (301, 307, 308) on the same site, or from http to https, gets the lead posted again; a "
        "302 or 303 after a post (the buyer took it: see here) is read with a GET.",
    )
    # Ping/post buyers: the ping (what they bid on) and how to read their bid. The post goes to `url`,
    # judged by the accepted/rejection rule above, with the bid id beside the lead.
    ping_url = models.URLField(
        "ping URL", max_length=2000, blank=True, help_text="Ping/post: where the bid request goes."
    )
    ping_fields = StringListField(
        item_choices=PING_FIELDS, help_text="Ping/post: what the ping tells the buyer. None of these identify anyone."
    )
    ping_answer_keys = StringListField(
        "quiz answers in the ping",
        help_text="With chosen quiz answers: the question keys whose answers are sent, e.g. roof_type, "
        "homeowner. Pick multiple-choice questions, never a free-text one.",
    )
    bid_json_path = models.CharField(
        "bid JSON path",
        max_length=200,
        blank=True,
        help_text="Ping/post: the answer's bid amount, e.g. bid or data.price.",
    )
    bid_id_json_path = models.CharField(
        "bid id JSON path",
        max_length=200,
        blank=True,
        help_text="Ping/post: the answer's bid id, posted back with the lead as bid_id, e.g. bid_id or data.id.",
    )
    ping_timeout_ms = models.PositiveIntegerField(
        "ping timeout (ms)",
        default=1000,
        validators=[MinValueValidator(50), MaxValueValidator(10000)],
        help_text="Ping/post: a bid later than this does not count (50-10,000 ms). The post uses the timeout above.",
    )
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["advertiser__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "name"], name="destination_unique_name_per_advertiser")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.advertiser})"

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL:
            if not self.email_to:
                raise ValidationError({"email_to": "An email destination needs at least one address."})
            from django.core.validators import validate_email

            for address in self.email_to:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError({"email_to": f"{address!r} is not an email address."}) from None
        elif not self.url:
            raise ValidationError({"url": "An HTTP destination needs a URL."})
        if self.kind == self.Kind.PING_POST:
            problems = {}
            if not self.ping_url:
                problems["ping_url"] = "A ping/post buyer needs a ping URL (the URL above receives the post)."
            if not self.bid_json_path:
                problems["bid_json_path"] = "Say which field of the ping's answer holds the bid, e.g. bid."
            if self.ping_answer_keys and "answers" not in self.ping_fields:
                problems["ping_answer_keys"] = "Tick chosen quiz answers among the ping fields to send these."
            if problems:
                raise ValidationError(problems)
        if self.accept_json_value and not self.accept_json_path:
            raise ValidationError({"accept_json_path": "Say which field of the answer holds this value."})
        if self.auth == self.Auth.BASIC and not self.auth_username:
            raise ValidationError({"auth_username": "Basic authentication needs a user name."})


class WebhookSecret(models.Model):
    """A signing secret of a buyer's destination or a supplier's webhook. Two may be active at once,
    so the partner can rotate without a gap."""

    destination = models.ForeignKey(
        DeliveryDestination, null=True, blank=True, on_delete=models.CASCADE, related_name="secrets"
    )
    partner = models.ForeignKey(
        Partner, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_secrets"
    )
    prefix = models.CharField(max_length=16, editable=False, help_text="Its first characters, to tell secrets apart.")
    secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(destination__isnull=False, partner__isnull=True)
                | Q(destination__isnull=True, partner__isnull=False),
                name="secret_of_destination_or_partner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.prefix}…"


class DeliveryRoute(models.Model):
    """A buyer of an offer's leads: priority, weight, what it accepts and how many it takes."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="delivery_routes")
    destination = models.ForeignKey(DeliveryDestination, on_delete=models.PROTECT, related_name="routes")
    priority = models.PositiveSmallIntegerField(default=1, help_text="Lower goes first.")
    weight = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Share among buyers of the same priority."
    )
    accepted_countries = StringListField(
        item_case="upper", help_text="ISO country codes, e.g. US, CA. Empty: all countries."
    )
    accepted_lead_types = StringListField(item_choices=LeadType.choices, help_text="None ticked: all types.")
    hourly_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no cap.")
    daily_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Per day in TIME_ZONE. Empty: no cap.")
    price_per_lead = models.DecimalField(
        null=True,
        blank=True,
        help_text="What the buyer pays per accepted lead, in the offer's currency. Empty: the offer's payout per "
        "lead. Prices by country or lead type below take precedence.",
        **MONEY,
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["offer", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["offer", "destination"], name="route_unique_destination")]

    def __str__(self) -> str:
        return f"{self.offer.name} -> {self.destination.name}"

    def clean(self) -> None:
        from campaigns.visitor import validate_country_codes

        validate_country_codes(self.accepted_countries)

    def price_for(self, lead: "Lead") -> Decimal:
        """The price of this lead to this buyer: the most specific of its prices (country and lead type,
        then country, then lead type), else the route's price, else the offer's payout per lead.

        Reads `self.prices.all()`, so prefetch them when pricing many routes."""
        matching = [
            price
            for price in self.prices.all()
            if price.country in ("", lead.country) and price.lead_type in ("", lead.lead_type)
        ]
        if matching:
            best = max(matching, key=lambda price: (bool(price.country), bool(price.lead_type)))
            return best.price
        if self.price_per_lead is not None:
            return self.price_per_lead
        return self.offer.payout_per_lead

    def refusal(self, lead: "Lead") -> str:
        """Why this buyer does not take the lead ("" when it does), caps aside."""
        if self.accepted_countries and lead.country not in self.accepted_countries:
            return f"country {lead.country or 'unknown'} not accepted"
        if self.accepted_lead_types and lead.lead_type not in self.accepted_lead_types:
            return f"{lead.lead_type} leads not accepted"
        return ""


class Delivery(models.Model):
    """One lead sent to one buyer. Its webhook id stays the same on every attempt, so buyers dedupe."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected by buyer"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(DeliveryDestination, on_delete=models.PROTECT, related_name="deliveries")
    route = models.ForeignKey(
        DeliveryRoute, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="The buyer's rejection reason or the last error.")
    buyer_reference = models.CharField(max_length=200, blank=True, help_text="The buyer's id for the lead.")
    # The price the lead is sold at, fixed when the buyer is chosen; booked in the ledger when accepted.
    price = models.DecimalField(null=True, blank=True, editable=False, **MONEY)
    currency = models.CharField(max_length=3, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # A buyer gets a lead once; a redelivery resends the same row (and webhook id).
            models.UniqueConstraint(fields=["lead", "destination"], name="delivery_once_per_buyer"),
        ]
        indexes = [
            models.Index(fields=["route", "created_at"], name="delivery_route_time"),
            models.Index(fields=["status", "created_at"], name="delivery_status_time"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} -> {self.destination.name}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.public_id.hex}"


class PartnerCall(models.Model):
    """What postbacks and supplier notifications share: a call retried until sent or failed
    (leads.services.calls records each attempt on it)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class Postback(PartnerCall):
    """One conversion event told to the traffic source that sent the lead's click."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="postbacks")
    event = models.CharField(max_length=10, choices=PostbackEvent.choices)
    payout = models.DecimalField(max_digits=14, decimal_places=2)  # negative for a reversal
    currency = models.CharField(max_length=3)

    class Meta(PartnerCall.Meta):
        constraints = [models.UniqueConstraint(fields=["lead", "event"], name="postback_once_per_event")]

    def __str__(self) -> str:
        return f"{self.get_event_display()} postback for lead {self.lead_id}"


class PartnerNotification(PartnerCall):
    """An event about a supplier's lead (a return) sent to the supplier's webhook."""

    class Event(models.TextChoices):
        LEAD_RETURNED = "lead.returned", "Lead returned"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="notifications")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="partner_notifications")
    event = models.CharField(max_length=30, choices=Event.choices)
    data = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.event} to {self.partner_id} for lead {self.lead_id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.public_id.hex}"


class DeliveryAttempt(models.Model):
    """One HTTP call (or email) of a delivery, postback or notification: what was asked and what came back."""

    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.CASCADE, related_name="attempt_log")
    postback = models.ForeignKey(Postback, null=True, blank=True, on_delete=models.CASCADE, related_name="attempt_log")
    notification = models.ForeignKey(
        PartnerNotification, null=True, blank=True, on_delete=models.CASCADE, related_name="attempt_log"
    )
    started_at = models.DateTimeField(default=timezone.now)
    url = models.CharField(max_length=2000, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10)  # accepted, rejected, retry, failed
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.TextField(blank=True, help_text="The first 2 kB of the answer.")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(delivery__isnull=False, postback__isnull=True, notification__isnull=True)
                | Q(delivery__isnull=True, postback__isnull=False, notification__isnull=True)
                | Q(delivery__isnull=True, postback__isnull=True, notification__isnull=False),
                name="attempt_of_one_call",
            )
        ]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"

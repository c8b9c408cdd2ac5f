"""Partners (suppliers posting leads in, buyers receiving them), their API keys, and the answers
replayed for an API call repeated with the same Idempotency-Key."""

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign
from leadcrm.fields import StringListField

from .choices import ApiScope


class Partner(models.Model):
    """A partner system: a supplier posts leads in, a buyer receives them and reports outcomes."""

    class Role(models.TextChoices):
        SUPPLIER = "supplier", "Supplier (posts leads)"
        BUYER = "buyer", "Buyer (receives leads)"
        BOTH = "both", "Supplier and buyer"

    name = models.CharField(max_length=120, unique=True)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.SUPPLIER)
    campaigns = models.ManyToManyField(
        Campaign, blank=True, related_name="partners", help_text="Campaigns a supplier may post leads to."
    )
    advertiser = models.ForeignKey(
        "campaigns.Advertiser",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="partners",
        help_text="For buyers: the advertiser whose offers' leads they receive.",
    )
    ip_allowlist = StringListField(
        "IP allowlist", help_text="Addresses or CIDR ranges the partner calls from, e.g. 203.0.113.0/24. Empty: any."
    )
    rate_limit_per_minute = models.PositiveIntegerField(default=600)
    webhook_url = models.URLField(
        "webhook URL",
        max_length=2000,
        blank=True,
        help_text="For suppliers: where we POST events about their leads (lead.returned), signed like deliveries.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_supplier(self) -> bool:
        return self.role in (self.Role.SUPPLIER, self.Role.BOTH)

    @property
    def is_buyer(self) -> bool:
        return self.role in (self.Role.BUYER, self.Role.BOTH)

    def clean(self) -> None:
        bad = []
        for entry in self.ip_allowlist:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValidationError({"ip_allowlist": f"Not an IP address or CIDR range: {', '.join(bad)}."})


class ApiKey(models.Model):
    """A partner's key: only its SHA-256 is stored; the full key is shown once, at creation."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120, blank=True, help_text="Where the partner uses it, e.g. production.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = StringListField(item_choices=ApiScope.choices)
    is_sandbox = models.BooleanField(
        default=False, help_text="Leads run the full pipeline but are marked test: never delivered, billed or counted."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.partner})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class IdempotencyRecord(models.Model):
    """The first answer to a request sent with an Idempotency-Key, replayed for repeats (24 h)."""

    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(  # a staff user calling the API with a session or token
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    sandbox = models.BooleanField(default=False, help_text="Sandbox and live keys never share answers.")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # empty while processing
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "sandbox", "key"],
                condition=Q(partner__isnull=False),
                name="idempotency_unique_key_per_partner",
            ),
            models.UniqueConstraint(
                fields=["user", "key"], condition=Q(user__isnull=False), name="idempotency_unique_key_per_user"
            ),
            models.CheckConstraint(
                condition=Q(partner__isnull=False, user__isnull=True) | Q(partner__isnull=True, user__isnull=False),
                name="idempotency_one_caller",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_age")]

    def __str__(self) -> str:
        return f"{self.key} ({self.partner_id or self.user_id})"

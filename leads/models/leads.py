import ipaddress
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import (
    MONEY,
    Advertiser,
    Campaign,
    Click,
    LandingPage,
    LeadType,
    Offer,
    PostbackEvent,
    TrafficSource,
)
from leadcrm.fields import StringListField


class Door(models.TextChoices):
    LANDING_PAGE = "landing_page", "Landing page"
    QUIZ = "quiz", "Quiz funnel"
    API = "api", "Partner API"
    CSV = "csv", "CSV import"
    ADMIN = "admin", "Admin"


class Validity(models.TextChoices):
    VALID = "valid", "Valid"
    SUSPECT = "suspect", "Suspect"
    INVALID = "invalid", "Invalid"


class Qualification(models.TextChoices):
    QUALIFIED = "qualified", "Qualified"
    DISQUALIFIED = "disqualified", "Disqualified"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    WORKING = "working", "Working"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    RETURNED = "returned", "Returned"


OPEN_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.WORKING)
# The queue reps claim from: unassigned, open, real leads that are not invalid.
UNASSIGNED_QUEUE = Q(assigned_to__isnull=True, is_test=False, is_duplicate=False, status__in=OPEN_STATUSES) & ~Q(
    validity="invalid"
)
# A lead that can be sold, delivered, paid for and counted as valid: valid, original and real. The
# one rule, as a query here and as a check in Lead.is_billable.
BILLABLE = Q(validity="valid", is_duplicate=False, is_test=False)
# Leads a sales rep works at once: valid, real, qualified and high-intent. Assignment, speed-to-lead
# escalation and the capture's follow-ups all use this one rule (as a query and as a check).
AUTO_ASSIGNABLE = BILLABLE & Q(
    qualification="qualified",
    lead_type="hard",
    status__in=OPEN_STATUSES,
)


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


class ApiScope(models.TextChoices):
    LEADS_WRITE = "leads:write", "leads:write"
    LEADS_READ = "leads:read", "leads:read"
    OUTCOMES_WRITE = "outcomes:write", "outcomes:write"
    CAMPAIGNS_READ = "campaigns:read", "campaigns:read"
    REPORTS_READ = "reports:read", "reports:read"


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


class Lead(models.Model):
    """A person who showed interest. Every submission is kept, even invalid or duplicate ones."""

    public_id = models.UUIDField("ID", default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    door = models.CharField(max_length=20, choices=Door.choices)
    idempotency_key = models.CharField(
        max_length=200, null=True, blank=True, unique=True, help_text="Makes re-sent submissions safe."
    )
    is_test = models.BooleanField(default=False, help_text="Sandbox lead: never delivered, billed or counted.")

    partner = models.ForeignKey(
        Partner, null=True, blank=True, on_delete=models.PROTECT, related_name="leads", help_text="The supplier."
    )
    # Where it came from; offer and source are copied at capture so later edits do not rewrite history.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="leads")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="leads")
    traffic_source = models.ForeignKey(TrafficSource, on_delete=models.PROTECT, related_name="leads")
    landing_page = models.ForeignKey(
        LandingPage, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    tracked_click = models.ForeignKey(Click, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    click_id = models.CharField(max_length=128, blank=True)
    sub_ids = models.JSONField(default=dict, blank=True)

    # Contact, normalised.
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True, help_text="E.164 when valid; as typed when not.")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    company = models.CharField(max_length=200, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True)
    budget = models.DecimalField(null=True, blank=True, **MONEY)
    country = models.CharField(max_length=2, blank=True)
    zip_code = models.CharField(max_length=20, blank=True)
    message = models.TextField(blank=True)
    answers = models.JSONField(default=dict, blank=True)
    raw_data = models.JSONField(default=dict, blank=True, help_text="The submission as received.")

    # Visitor.
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    device_type = models.CharField(max_length=10, blank=True)
    os = models.CharField("OS", max_length=10, blank=True)
    browser = models.CharField(max_length=64, blank=True)

    # Judgement.
    action = models.CharField(max_length=40, blank=True)
    lead_type = models.CharField(max_length=4, choices=LeadType.choices)
    validity = models.CharField(max_length=7, choices=Validity.choices)
    validity_reasons = models.JSONField(default=list, blank=True)
    is_duplicate = models.BooleanField(default=False)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    qualification = models.CharField(max_length=12, choices=Qualification.choices)
    qualification_reasons = models.JSONField(default=list, blank=True)
    score = models.PositiveSmallIntegerField(default=0)
    score_breakdown = models.JSONField(default=list, blank=True)

    # Consent, with what was shown.
    consent = models.BooleanField(default=False)
    consent_text = models.TextField(blank=True)
    consent_version = models.CharField(max_length=40, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)

    # Sales workflow.
    status = models.CharField(max_length=10, choices=LeadStatus.choices, default=LeadStatus.NEW)
    status_reason = models.CharField(max_length=300, blank=True)
    sale_amount = models.DecimalField(null=True, blank=True, **MONEY)
    sale_currency = models.CharField(max_length=3, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_leads"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_contacted_at = models.DateTimeField(null=True, blank=True)
    next_follow_up = models.DateField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="When the person's data was erased on request; the lead still counts."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("view_all_leads", "Can see every lead, not only own and unassigned"),
            ("assign_lead", "Can assign leads to any sales rep"),
            ("export_lead", "Can export leads as CSV"),
            ("erase_lead", "Can erase a lead's personal data"),
        ]
        indexes = [
            # Dedupe and velocity lookups: per offer and contact, per IP, within a time window.
            models.Index(fields=["offer", "email", "created_at"], name="lead_dedupe_email"),
            models.Index(fields=["offer", "phone", "created_at"], name="lead_dedupe_phone"),
            models.Index(fields=["ip", "created_at"], name="lead_ip_time"),
            # The lead list: its default ordering and every filter it offers, newest first.
            models.Index(fields=["-created_at", "-id"], name="lead_newest_first"),
            models.Index(fields=["lead_type", "-created_at"], name="lead_type_time"),
            models.Index(fields=["score", "-created_at"], name="lead_score_time"),
            models.Index(fields=["qualification", "-created_at"], name="lead_qualification_time"),
            models.Index(fields=["country", "-created_at"], name="lead_country_time"),
            models.Index(fields=["door", "-created_at"], name="lead_door_time"),
            models.Index(fields=["traffic_source", "-created_at"], name="lead_source_time"),
            models.Index(fields=["-created_at"], condition=Q(is_duplicate=True), name="lead_duplicates"),
            models.Index(fields=["-created_at"], condition=Q(is_test=True), name="lead_tests"),
            models.Index(
                fields=["escalated_at"],
                condition=Q(escalated_at__isnull=False, first_contacted_at__isnull=True),
                name="lead_escalated_uncontacted",
            ),
            models.Index(fields=["campaign", "created_at"], name="lead_campaign_time"),
            models.Index(fields=["assigned_to", "status", "-created_at"], name="lead_rep_status"),
            models.Index(fields=["status", "-created_at"], name="lead_status_time"),
            models.Index(fields=["validity", "-created_at"], name="lead_validity_time"),
            models.Index(fields=["assigned_to", "next_follow_up"], name="lead_rep_follow_up"),
            models.Index(fields=["click_id"], name="lead_click_id"),
            models.Index(fields=["email"], name="lead_email"),
            models.Index(fields=["phone"], name="lead_phone"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=100), name="lead_score_0_100"),
        ]

    def __str__(self) -> str:
        name = " ".join(filter(None, [self.first_name, self.last_name]))
        return name or self.email or self.phone or str(self.public_id)

    @property
    def is_billable(self) -> bool:
        """BILLABLE, checked on this object without a query."""
        return self.validity == Validity.VALID and not self.is_duplicate and not self.is_test

    @property
    def is_auto_assignable(self) -> bool:
        """AUTO_ASSIGNABLE, checked on this object without a query."""
        return (
            self.is_billable
            and self.qualification == Qualification.QUALIFIED
            and self.lead_type == LeadType.HARD
            and self.status in OPEN_STATUSES
        )


class LeadEvent(models.Model):
    """One line of a lead's timeline: a pipeline step, a status change, a note, a follow-up."""

    class Kind(models.TextChoices):
        CAPTURED = "captured", "Captured"
        NORMALISED = "normalised", "Normalised"
        ENRICHED = "enriched", "Enriched"
        VALIDATED = "validated", "Validated"
        DEDUPLICATED = "deduplicated", "Deduplicated"
        CLASSIFIED = "classified", "Classified"
        QUALIFIED = "qualified", "Qualified"
        SCORED = "scored", "Scored"
        FOLLOW_UP_QUEUED = "follow_up_queued", "Follow-up queued"
        FOLLOW_UP_DONE = "follow_up_done", "Follow-up done"
        STATUS = "status", "Status changed"
        ASSIGNED = "assigned", "Assigned"
        NOTE = "note", "Note"
        CALL = "call", "Call"
        ESCALATED = "escalated", "Escalated"
        OUTCOME = "outcome", "Buyer outcome"
        DELIVERY = "delivery", "Delivery"
        POSTBACK = "postback", "Postback"
        NURTURE = "nurture", "Nurture"
        ERASED = "erased", "Personal data erased"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["lead", "created_at"], name="lead_event_lead_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M}"


class LeadNote(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.body[:60]


class CallLog(models.Model):
    class Outcome(models.TextChoices):
        REACHED = "reached", "Reached"
        NO_ANSWER = "no_answer", "No answer"
        VOICEMAIL = "voicemail", "Left voicemail"
        WRONG_NUMBER = "wrong_number", "Wrong number"
        CALL_BACK = "call_back", "Asked to call back"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="calls")
    rep = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    called_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    duration_seconds = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-called_at"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} {self.called_at:%Y-%m-%d %H:%M}"


class QualificationRule(models.Model):
    """One condition a lead for the offer must meet to be qualified, e.g. `company_size >= 50`."""

    class Operator(models.TextChoices):
        EQUALS = "==", "equals"
        NOT_EQUALS = "!=", "does not equal"
        IN = "in", "is one of"
        NOT_IN = "not in", "is none of"
        GREATER_OR_EQUAL = ">=", ">="
        GREATER = ">", ">"
        LESS_OR_EQUAL = "<=", "<="
        LESS = "<", "<"
        CONTAINS = "contains", "contains"
        PRESENT = "present", "is present"

    LEAD_FIELDS = (
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "company_size",
        "budget",
        "country",
        "zip_code",
        "lead_type",
        "action",
        "device_type",
        "os",
    )
    NUMERIC_OPERATORS = (">=", ">", "<=", "<")

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="qualification_rules")
    field = models.CharField(
        max_length=80, help_text="A lead field (country, company_size, budget ...) or answers.<question key>."
    )
    operator = models.CharField(max_length=8, choices=Operator.choices)
    value = models.CharField(max_length=500, blank=True, help_text="For 'is one of': values separated by commas.")
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["offer", "position", "id"]

    def __str__(self) -> str:
        if self.operator == self.Operator.PRESENT:
            return f"{self.field} present"
        return f"{self.field} {self.operator} {self.value}"

    def clean(self) -> None:
        errors = {}
        field = self.field.strip()
        if field not in self.LEAD_FIELDS and not (field.startswith("answers.") and len(field) > len("answers.")):
            errors["field"] = f"Use one of {', '.join(self.LEAD_FIELDS)} or answers.<question key>."
        if self.operator in self.NUMERIC_OPERATORS:
            try:
                float(self.value)
            except ValueError:
                errors["value"] = f"'{self.operator}' compares numbers; {self.value!r} is not a number."
        elif self.operator != self.Operator.PRESENT and not self.value.strip():
            errors["value"] = "This operator needs a value."
        if errors:
            raise ValidationError(errors)
        self.field = field


class BlockedEmailDomain(models.Model):
    """Disposable or abusive email domains added by staff, on top of the shipped list."""

    domain = models.CharField(max_length=253, unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    def clean(self) -> None:
        self.domain = self.domain.strip().lower().lstrip("@")
        if "." not in self.domain or " " in self.domain:
            raise ValidationError({"domain": "Enter a domain such as mailinator.com."})


class SalesRepProfile(models.Model):
    """How a sales rep takes part in automatic assignment."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sales_profile")
    is_available = models.BooleanField(default=True, help_text="Off: gets no new leads (holiday, leave).")
    countries = StringListField(item_case="upper", help_text="Only leads from these countries. Empty: all.")
    offers = models.ManyToManyField(Offer, blank=True, help_text="Only leads for these offers. None: all.")
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.user)


class OutboxEntry(models.Model):
    """A follow-up of a lead, written in the same transaction as the lead and retried until done."""

    class Kind(models.TextChoices):
        ASSIGNMENT = "assignment", "Assignment"
        DELIVERY = "delivery", "Delivery to buyer"
        POSTBACK = "postback", "Postback to traffic source"
        NURTURE_ENROLLMENT = "nurture_enrollment", "Nurture enrollment"
        PARTNER_NOTIFICATION = "partner_notification", "Notification to supplier"
        NURTURE_EMAIL = "nurture_email", "Nurture email"
        NURTURE_WEBHOOK = "nurture_webhook", "Nurture webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outbox_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last sent to the broker; empty while none is queued."
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "outbox entries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_due",
                condition=Q(status__in=["pending", "processing"]),
            ),
            models.Index(fields=["lead", "kind"], name="outbox_lead_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for lead {self.lead_id}"


class LeadImport(models.Model):
    """One CSV file of leads, with its per-row report; re-running the same file adds nothing."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file_name = models.CharField(max_length=255)
    file = models.FileField(upload_to="lead-imports/", blank=True, help_text="The uploaded file, kept for re-runs.")
    checksum = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rows = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0, help_text="Rows imported so far, while it runs.")
    created_leads = models.PositiveIntegerField(default=0)
    already_imported = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    report_csv = models.TextField(blank=True, help_text="line,outcome,lead,validity,reasons")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.created_at:%Y-%m-%d %H:%M})"


class LeadOutcome(models.Model):
    """What a buyer reported about a lead; its external reference makes reports idempotent."""

    class Kind(models.TextChoices):
        ACCEPTED = "accepted", "Accepted by the buyer"
        CONTACTED = "contacted", "Contacted"
        CONVERTED = "converted", "Converted (sale)"
        RETURNED = "returned", "Returned"

    class ReturnReason(models.TextChoices):
        INVALID_CONTACT = "invalid_contact", "Invalid contact"
        DUPLICATE = "duplicate", "Duplicate"
        NOT_INTERESTED = "not_interested", "Not interested"
        FRAUD = "fraud", "Fraud"
        OTHER = "other", "Other"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outcomes")
    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.SET_NULL, related_name="outcomes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    external_reference = models.CharField(max_length=200, blank=True)
    sale_amount = models.DecimalField(null=True, blank=True, **MONEY)
    currency = models.CharField(max_length=3, blank=True)
    return_reason = models.CharField(max_length=20, choices=ReturnReason.choices, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "external_reference"],
                condition=~Q(external_reference=""),
                name="outcome_unique_reference_per_partner",
            ),
            # Postbacks and staff have no partner; NULLs never collide, so they need their own rule.
            models.UniqueConstraint(
                fields=["external_reference"],
                condition=~Q(external_reference="") & Q(partner__isnull=True),
                name="outcome_unique_reference_without_partner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for lead {self.lead_id}"


# --- Delivery to buyers and postbacks to traffic sources ----------------------------------------

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
    "ip",
    "user_agent",
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
        default=False, help_text="Off: a redirect answer is a failure. On: up to 3, each checked like the URL."
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


class HeldDelivery(OutboxEntry):
    """A lead no buyer can take now (caps, countries, lead types): it waits and is routed later."""

    class Meta:
        proxy = True
        verbose_name = "held lead"
        verbose_name_plural = "held leads (delivery queue)"

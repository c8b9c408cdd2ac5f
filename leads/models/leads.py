"""The lead, its timeline (events, notes, calls), buyers' outcomes, CSV imports, and how sales reps
take part in assignment."""

import uuid

from django.conf import settings
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
    TrafficSource,
)
from leadcrm.fields import StringListField

from .choices import OPEN_STATUSES, Door, LeadStatus, Qualification, Validity
from .consent import ConsentCertificate
from .partners import Partner

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


class Lead(models.Model):
    """A person who showed interest. Every submission is kept, even invalid or duplicate ones."""

    public_id = models.UUIDField("ID", default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    door = models.CharField(max_length=20, choices=Door.choices)
    # Unique where set (Meta.constraints): most leads have none (NULL), and their rows stay out of its index.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=200, null=True, blank=True, help_text="Makes re-sent submissions safe."
    )
    is_test = models.BooleanField(default=False, help_text="Sandbox lead: never delivered, billed or counted.")

    partner = models.ForeignKey(
        Partner, null=True, blank=True, on_delete=models.PROTECT, related_name="leads", help_text="The supplier."
    )
    # Where it came from; offer and source are copied at capture so later edits do not rewrite history.
    # No index of their own: lead_campaign_time, lead_dedupe_email and lead_source_time start with them.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="leads", db_index=False)
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="leads", db_index=False)
    traffic_source = models.ForeignKey(TrafficSource, on_delete=models.PROTECT, related_name="leads", db_index=False)
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
    # Referenced by its public id, so the API, the lead list and delivery payloads show it without a join.
    consent_certificate = models.OneToOneField(
        ConsentCertificate,
        to_field="public_id",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lead",
        help_text="Ours: written for every landing-page and quiz submission.",
    )
    third_party_consent_id = models.CharField(
        "third-party consent certificate",
        max_length=300,
        blank=True,
        help_text="A TrustedForm certificate URL or a Jornaya LeadiD the supplier sent.",
    )

    # Sales workflow.
    status = models.CharField(max_length=10, choices=LeadStatus.choices, default=LeadStatus.NEW)
    status_reason = models.CharField(max_length=300, blank=True)
    sale_amount = models.DecimalField(null=True, blank=True, **MONEY)
    sale_currency = models.CharField(max_length=3, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    assigned_to = models.ForeignKey(  # no index of its own: lead_rep_status starts with it
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_leads",
        db_index=False,
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
            ("export_person_data", "Can export everything held about a person (access requests)"),
        ]
        indexes = [
            # Dedupe and velocity lookups: per offer and contact, per IP, within a time window. The
            # dedupe ones in the lookup's order (created_at, id), so they serve it whatever its values.
            models.Index(fields=["offer", "email", "created_at", "id"], name="lead_dedupe_email"),
            models.Index(fields=["offer", "phone", "created_at", "id"], name="lead_dedupe_phone"),
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
            # Retention walks each offer's leads not yet erased, oldest first; erased leads leave it.
            models.Index(
                fields=["offer", "created_at"], condition=Q(erased_at__isnull=True), name="lead_retention_due"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=100), name="lead_score_0_100"),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="lead_idempotency_key_unique",
            ),
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

    # No index of its own: lead_event_lead_time (lead, created_at) serves every lookup by lead, and
    # a lead writes nine events, each one more index entry.
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events", db_index=False)
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
        # Not its text, which may quote the person: the admin's history names objects by this.
        return f"Note of {self.created_at:%Y-%m-%d %H:%M}"


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


class SalesRepProfile(models.Model):
    """How a sales rep takes part in automatic assignment."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sales_profile")
    is_available = models.BooleanField(default=True, help_text="Off: gets no new leads (holiday, leave).")
    countries = StringListField(item_case="upper", help_text="Only leads from these countries. Empty: all.")
    offers = models.ManyToManyField(Offer, blank=True, help_text="Only leads for these offers. None: all.")
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.user)


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
    """What a buyer reported about a lead, and who reported it; its external reference makes reports
    idempotent."""

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

    class Reporter(models.TextChoices):
        ADVERTISER_POSTBACK = "advertiser_postback", "Advertiser postback"
        PARTNER_API = "partner_api", "Buyer over the API"
        STAFF = "staff", "Staff"
        SYSTEM = "system", "System"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outcomes")
    reported_by = models.CharField(
        max_length=20,
        choices=Reporter.choices,
        default=Reporter.SYSTEM,
        help_text="Who reported it: the buyer's server (postback or API key), a staff user, or our own code.",
    )
    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.SET_NULL, related_name="outcomes")
    advertiser = models.ForeignKey(
        Advertiser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The advertiser whose postback token reported it.",
    )
    reported_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The staff user who reported it.",
    )
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

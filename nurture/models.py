"""Nurture flows: timed emails and actions for enrolled leads, the messages sent, and suppression."""

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, LeadType, Offer, TrafficSource
from leadcrm.fields import StringListField
from leads.models import Lead, LeadStatus, Qualification, Validity
from leads.services.normalisation import normalise_email


class LeadConditions(models.Model):
    """Conditions on leads, shared by flows (who may enter) and audiences (who is in). Empty: any."""

    offers = models.ManyToManyField(Offer, blank=True, related_name="+")
    campaigns = models.ManyToManyField(Campaign, blank=True, related_name="+")
    traffic_source_kinds = StringListField(item_choices=TrafficSource.Kind.choices)
    lead_types = StringListField(item_choices=LeadType.choices)
    validities = StringListField(item_choices=[(Validity.VALID, "Valid"), (Validity.SUSPECT, "Suspect")])
    qualifications = StringListField(item_choices=Qualification.choices)
    countries = StringListField(item_case="upper", help_text="ISO country codes. Empty: all.")
    min_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])
    max_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(100)])

    class Meta:
        abstract = True

    def clean(self) -> None:
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValidationError({"max_score": "Must not be below the minimum score."})

    def lead_filter(self, *, offers: Iterable | None = None, campaigns: Iterable | None = None) -> Q:
        """The conditions as one filter on leads. Offers and campaigns are the saved ones, or those
        given (as chosen on a form, for conditions not saved yet)."""
        conditions = Q()
        for lookup, allowed in (
            ("traffic_source__kind__in", self.traffic_source_kinds),
            ("lead_type__in", self.lead_types),
            ("validity__in", self.validities),
            ("qualification__in", self.qualifications),
            ("country__in", self.countries),
        ):
            if allowed:
                conditions &= Q(**{lookup: allowed})
        if self.min_score is not None:
            conditions &= Q(score__gte=self.min_score)
        if self.max_score is not None:
            conditions &= Q(score__lte=self.max_score)
        offers = [offer.pk for offer in (self.offers.all() if offers is None else offers)]
        campaigns = [campaign.pk for campaign in (self.campaigns.all() if campaigns is None else campaigns)]
        if offers:
            conditions &= Q(offer_id__in=offers)
        if campaigns:
            conditions &= Q(campaign_id__in=campaigns)
        return conditions


class Flow(LeadConditions):
    class Trigger(models.TextChoices):
        CAPTURED = "captured", "Lead captured"
        QUALIFIED = "qualified", "Lead qualified"
        STATUS = "status", "Status changed to…"
        MANUAL = "manual", "Added by staff (admin action)"
        SEGMENT = "segment", "Saved segment (every lead matching the conditions)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused (enrollments wait)"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PAUSED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.CAPTURED)
    trigger_status = models.CharField(
        max_length=10, choices=LeadStatus.choices, blank=True, help_text="For 'status changed to…'."
    )
    # Custom exits, besides converted, lost, returned, unsubscribed, bounced and complained.
    exit_statuses = StringListField(
        item_choices=[(LeadStatus.CONTACTED, "Contacted"), (LeadStatus.WORKING, "Working")],
        help_text="Leave the flow when the lead reaches one of these (e.g. sales took over).",
    )
    exit_score_above = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="Leave the flow once the score is above."
    )
    segment_days = models.PositiveSmallIntegerField(
        default=30, help_text="For a segment: leads captured within this many days (checked every 5 minutes)."
    )
    reentry_cooldown_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Days after leaving before a lead may enter again. Empty: never again."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.trigger == self.Trigger.STATUS and not self.trigger_status:
            raise ValidationError({"trigger_status": "Say which status starts the flow."})


class FlowStep(models.Model):
    """One step. Steps that enrollments point at are never deleted, only retired, so editing a
    running flow cannot strand its leads."""

    class Kind(models.TextChoices):
        WAIT = "wait", "Wait"
        EMAIL = "email", "Send email"
        BRANCH = "branch", "Branch"
        NOTIFY_REP = "notify_rep", "Notify the sales rep (follow-up today)"
        SET_STATUS = "set_status", "Change lead status"
        WEBHOOK = "webhook", "Call a webhook (send the lead to a destination)"
        AUDIENCE = "audience", "Add to a retargeting audience (static list)"

    class Condition(models.TextChoices):
        OPENED = "opened", "Opened the last email"
        CLICKED = "clicked", "Clicked in the last email"
        SCORE_ABOVE = "score_above", "Score above N"
        STATUS_IS = "status_is", "Status is"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    is_retired = models.BooleanField(default=False, help_text="Kept for enrollments that reached it; skipped.")
    entered = models.PositiveIntegerField(default=0, editable=False, help_text="Enrollments that reached it.")
    # wait
    wait_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Wait this many minutes (1440 a day).")
    wait_until_weekday = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(7)],
        help_text="ISO weekday, Monday 1.",
    )
    wait_until_time = models.TimeField(null=True, blank=True, help_text="In the lead's local time.")
    # email
    subject = models.CharField(max_length=200, blank=True, help_text="Django template: {{ lead.first_name }} ...")
    body_text = models.TextField(blank=True, help_text="Plain-text part (Django template).")
    body_html = models.TextField(blank=True, help_text="HTML part (Django template); links are tracked.")
    # branch
    condition = models.CharField(max_length=12, choices=Condition.choices, blank=True)
    condition_value = models.CharField(max_length=40, blank=True, help_text="N for a score, a status for 'status is'.")
    goto_position = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Position to jump to when the condition holds; otherwise the next step."
    )
    # set status
    new_status = models.CharField(max_length=10, choices=LeadStatus.choices, blank=True)
    # add to audience
    audience = models.ForeignKey(
        "nurture.Audience",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": "static"},
    )
    # webhook: a delivery destination, so its mapping, authentication, signing and SSRF checks apply
    destination = models.ForeignKey(
        "leads.DeliveryDestination", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["flow", "position", "id"]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"

    def clean(self) -> None:
        if self.kind == self.Kind.WAIT and not (self.wait_minutes or self.wait_until_weekday or self.wait_until_time):
            raise ValidationError("A wait needs minutes, or a weekday and/or time to wait until.")
        if self.kind == self.Kind.EMAIL and not (self.subject and (self.body_text or self.body_html)):
            raise ValidationError("An email needs a subject and a text or HTML body.")
        if self.kind == self.Kind.BRANCH and not (self.condition and self.goto_position is not None):
            raise ValidationError("A branch needs a condition and the position to jump to.")
        if self.kind == self.Kind.BRANCH:
            self._clean_condition_value()
        if self.kind == self.Kind.AUDIENCE and not self.audience_id:
            raise ValidationError({"audience": "Choose the static audience list."})
        if self.kind == self.Kind.WEBHOOK and not self.destination_id:
            raise ValidationError({"destination": "Choose the destination to call."})
        if self.kind == self.Kind.SET_STATUS and not self.new_status:
            raise ValidationError({"new_status": "Choose the status."})
        if self.kind == self.Kind.EMAIL:
            from django.template import Template, TemplateSyntaxError

            for field in ("subject", "body_text", "body_html"):
                try:
                    Template(getattr(self, field))
                except TemplateSyntaxError as error:
                    raise ValidationError({field: f"Template error: {error}"}) from None

    def _clean_condition_value(self) -> None:
        """The value the tick compares with: a whole score from 0 to 100, or one of the statuses."""
        value = self.condition_value.strip()
        if self.condition == self.Condition.SCORE_ABOVE:
            if branch_score(value) is None:
                raise ValidationError({"condition_value": "Enter the score as a whole number from 0 to 100, e.g. 50."})
            self.condition_value = value
        elif self.condition == self.Condition.STATUS_IS:
            status = value.lower()
            if status not in LeadStatus.values:
                names = ", ".join(LeadStatus.values)
                raise ValidationError({"condition_value": f"Enter one of the statuses: {names}."})
            self.condition_value = status


def branch_score(value: str) -> int | None:
    """The score of a "score above N" branch, or None if it is not a whole number from 0 to 100 (a value
    saved before the form checked it: such a branch never holds, rather than stopping every flow)."""
    try:
        score = int(value.strip())
    except ValueError:
        return None
    return score if 0 <= score <= 100 else None


class Enrollment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        EXITED = "exited", "Exited"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="enrollments")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="enrollments")
    step = models.ForeignKey(FlowStep, null=True, blank=True, on_delete=models.PROTECT, related_name="enrollments")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.ACTIVE)
    next_run_at = models.DateTimeField(default=timezone.now)
    waiting = models.BooleanField(default=False, help_text="The wait of its current step has started.")
    entered_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            # A lead is in a flow at most once at a time.
            models.UniqueConstraint(
                fields=["flow", "lead"], condition=Q(status__in=["active", "paused"]), name="enrollment_once_at_a_time"
            )
        ]
        indexes = [
            # The tick reads only due active enrollments: its cost follows them, not the total.
            models.Index(fields=["next_run_at"], condition=Q(status="active"), name="enrollment_due"),
        ]

    def __str__(self) -> str:
        # The lead by its id, not the person's name: the admin's history names objects by this.
        return f"Lead {self.lead_id} in {self.flow}"


class Suppression(models.Model):
    """An address we never email again, whichever lead it comes back on."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained (spam report)"
        MANUAL = "manual", "Added by staff"

    email = models.CharField(max_length=254, unique=True)
    reason = models.CharField(max_length=12, choices=Reason.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        self.email = normalise_email(self.email)  # as leads store it (NFC, lower case)
        super().save(*args, **kwargs)


class NurtureMessage(models.Model):
    """One email of a flow to a lead, written when the step runs and sent through the outbox."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"
        SUPPRESSED = "suppressed", "Not sent (suppressed)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="messages")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="nurture_messages")
    step = models.ForeignKey(FlowStep, on_delete=models.PROTECT, related_name="messages")
    to_email = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    provider_id = models.CharField(max_length=200, blank=True, help_text="The Message-ID it was sent with.")
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["lead", "sent_at"], name="nurture_message_lead_sent"),
            # The frequency cap reads each address's last email.
            models.Index(fields=["to_email", "created_at"], name="nurture_message_to_created"),
        ]

    def __str__(self) -> str:
        return f"{self.step} to lead {self.lead_id}"


class Audience(LeadConditions):
    """A saved segment of leads for retargeting, or a static list that flows add leads to.

    Suppressed, test and duplicate leads and leads without marketing consent are never in one.
    """

    class Kind(models.TextChoices):
        SEGMENT = "segment", "Segment (leads matching the conditions)"
        STATIC = "static", "Static list (added by flows)"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SEGMENT)
    statuses = StringListField(item_choices=LeadStatus.choices)
    captured_within_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Only leads captured in the last N days. Empty: any time."
    )
    engaged_not_converted = models.BooleanField(
        default=False, help_text="Only leads that opened or clicked a nurture email and have not bought."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    conditions_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When who is in it last changed (its kind or conditions)."
    )

    class Meta:
        ordering = ["name"]
        permissions = [("export_plain_audience", "Can create and download unhashed audience exports")]

    def __str__(self) -> str:
        return self.name


class AudienceMember(models.Model):
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="members")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["audience", "lead"], name="audience_member_once")]

    def __str__(self) -> str:
        return f"lead {self.lead_id} in {self.audience}"


class AudienceExport(models.Model):
    """One export file of an audience. At most one per audience, format, mode and period."""

    class Format(models.TextChoices):
        META = "meta", "Meta custom audience (hashed)"
        GOOGLE = "google", "Google Customer Match (hashed)"
        GENERIC = "generic", "Hashed email and phone (DSPs)"
        PLAIN = "plain", "Plain CSV (unhashed; needs permission)"

    class Mode(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "New since the last export"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=8, choices=Format.choices)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    period = models.CharField(
        max_length=40, help_text="The run's period (e.g. 2026-11-29 for a daily schedule, or a timestamp)."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    rows = models.PositiveIntegerField(default=0, help_text="Rows written (so far, while it runs).")
    rows_total = models.PositiveIntegerField(default=0, help_text="Rows it will have, counted when it started.")
    file = models.FileField(upload_to="audience-exports/", blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the file.")
    since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Incremental: what is new since then (in a segment, leads captured or changed; in a list, "
        "leads added).",
    )
    error = models.CharField(max_length=500, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why it ran as it did, e.g. in full.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A schedule that fires twice (two beats, a retried task) makes one export per period.
            models.UniqueConstraint(fields=["audience", "format", "mode", "period"], name="audience_export_once")
        ]

    def __str__(self) -> str:
        return f"{self.audience} {self.format} {self.period}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

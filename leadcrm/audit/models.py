"""Who read personal data, when, and how much: a row per lead page viewed, export downloaded or staff
API read. Changes to data are recorded by django-auditlog (its LogEntry); this app only adds reads."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from leads.models import Lead


class AccessLogEntry(models.Model):
    class Kind(models.TextChoices):
        LEAD_PAGE = "lead_page", "Lead page viewed"
        LEAD_EXPORT = "lead_export", "Leads exported as CSV"
        AUDIENCE_DOWNLOAD = "audience_download", "Audience export downloaded"
        SUPPRESSION_EXPORT = "suppression_export", "Suppression list exported"
        API_LEAD_LIST = "api_lead_list", "Leads listed over the API"
        API_LEAD_DETAIL = "api_lead_detail", "Lead read over the API"
        ACCESS_REQUEST = "access_request", "Access request exported"
        EMAIL_PREVIEW = "email_preview", "Flow email previewed or test-sent for a lead"

    created_at = models.DateTimeField("when", default=timezone.now)
    # The log outlives what it names: no database constraint, nothing cascades or is set null when a
    # user or a lead is deleted, so an entry always says who read which lead.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    username = models.CharField(max_length=150, help_text="As it was when they read.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    rows = models.PositiveIntegerField(null=True, blank=True, help_text="Leads or people in an export or a list.")
    path = models.CharField(max_length=500, help_text="The page or endpoint, without its query string.")

    class Meta:
        verbose_name = "personal data access"
        verbose_name_plural = "personal data access log"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="access_log_recent"),
            models.Index(fields=["lead", "-created_at"], name="access_log_lead"),
            models.Index(fields=["user", "-created_at"], name="access_log_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.username} at {self.created_at:%Y-%m-%d %H:%M}"

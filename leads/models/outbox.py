"""The outbox: follow-ups of a lead written in the lead's transaction and retried until done
(leads.services.outbox runs them)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .leads import Lead


class OutboxEntry(models.Model):
    """A follow-up of a lead, written in the same transaction as the lead and retried until done."""

    class Kind:
        """The leads app's own kinds. Every app registers its kinds, with their labels, with the
        outbox (leads.services.outbox.register_follow_up): the column holds any registered name."""

        ASSIGNMENT = "assignment"
        DELIVERY = "delivery"
        AUCTION = "auction"
        POSTBACK = "postback"
        PARTNER_NOTIFICATION = "partner_notification"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    # No index of its own: outbox_lead_kind (lead, kind) serves every lookup by lead.
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outbox_entries", db_index=False)
    kind = models.CharField(max_length=20, help_text="A follow-up kind registered by the app that does it.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last sent to the broker; empty while none is queued."
    )
    last_error = models.TextField(blank=True)
    # Apart from `attempts`: a handler's own retry schedule (RetryLater) may pass MAX_ATTEMPTS rightly.
    lost_claims = models.PositiveSmallIntegerField(
        default=0,
        help_text="Times in a row it was taken back after its worker stopped while running it (killed, out of "
        "memory, past its time limit). One that stops its worker each time fails instead of stopping workers for ever.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "outbox entries"
        indexes = [
            # By kind first: a worker claims its queue's kinds, and a backlog of another queue's
            # (a tick's 100,000 nurture emails) must not be read by every claim of deliveries.
            models.Index(
                fields=["kind", "next_attempt_at"],
                name="outbox_due_by_kind",
                condition=Q(status__in=["pending", "processing"]),
            ),
            models.Index(fields=["lead", "kind"], name="outbox_lead_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ').capitalize()} for lead {self.lead_id}"


class HeldDelivery(OutboxEntry):
    """A lead no buyer can take now (caps, countries, lead types): it waits and is routed later."""

    class Meta:
        proxy = True
        verbose_name = "held lead"
        verbose_name_plural = "held leads (delivery queue)"

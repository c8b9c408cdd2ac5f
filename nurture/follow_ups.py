"""The follow-up kinds of nurture, registered with the outbox when the app is ready."""

from django.conf import settings

from leads.models import Lead, Validity
from leads.services.outbox import FollowUpKind, register_follow_up

ENROLLMENT = "nurture_enrollment"
EMAIL = "nurture_email"
WEBHOOK = "nurture_webhook"


def needs_enrollment(lead: Lead) -> bool:
    """A new lead is offered to flows when it can be emailed: an address, marketing consent, and not junk."""
    return (
        bool(lead.email)
        and lead.consent
        and lead.validity != Validity.INVALID
        and not lead.is_duplicate
        and not lead.is_test
    )


def register_nurture_follow_ups() -> None:
    # Imported here: the services name these kinds.
    from .services.sending import nurture_email_batch, nurture_email_handler
    from .services.triggers import nurture_enrollment_handler
    from .services.webhooks import nurture_webhook_batch, nurture_webhook_handler

    register_follow_up(
        FollowUpKind(
            name=ENROLLMENT,
            label="Nurture enrollment",
            handle=nurture_enrollment_handler,
            needed_by_new_lead=needs_enrollment,
        )
    )
    register_follow_up(
        FollowUpKind(
            name=EMAIL,
            label="Nurture email",
            handle=nurture_email_handler,
            handle_batch=nurture_email_batch,
            timeline=False,
            sends_personal_data=True,
            batch_size=settings.NURTURE_EMAIL_BATCH_SIZE,  # one SMTP connection, load and record per batch
        )
    )
    register_follow_up(
        FollowUpKind(
            name=WEBHOOK,
            label="Nurture webhook",
            handle=nurture_webhook_handler,
            handle_batch=nurture_webhook_batch,
            queue=settings.PARTNER_CALLS_QUEUE,
            timeline=False,
            sends_personal_data=True,
        )
    )

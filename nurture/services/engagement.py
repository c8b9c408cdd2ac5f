"""What a lead does with a nurture email: opens, clicks, unsubscribes."""

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from leads.models import Lead, LeadEvent

from ..models import NurtureMessage, Suppression
from .enrollment import suppress

OPEN_POINTS = 5
CLICK_POINTS = 10


def _engaged(message_id: int, field: str, points: int, event: str) -> None:
    with transaction.atomic():
        message = NurtureMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None:
            return
        first_time = getattr(message, field) is None
        if first_time:
            now = timezone.now()
            NurtureMessage.objects.filter(pk=message.pk).update(**{field: now})
            # Engagement raises the score once per message, never past 100. The lead has changed: an
            # incremental audience export (engaged, or by score) takes it in.
            Lead.objects.filter(pk=message.lead_id).update(score=Least(F("score") + points, 100), updated_at=now)
        LeadEvent.objects.create(
            lead_id=message.lead_id,
            kind=LeadEvent.Kind.NURTURE,
            data={event: str(message.public_id), "first": first_time},
        )


def message_opened(*, message_id: int) -> None:
    _engaged(message_id, "opened_at", OPEN_POINTS, "opened")


def message_clicked(*, message_id: int) -> None:
    with transaction.atomic():
        # A click implies the email was opened, even with images blocked.
        NurtureMessage.objects.filter(pk=message_id, opened_at__isnull=True).update(opened_at=timezone.now())
        _engaged(message_id, "clicked_at", CLICK_POINTS, "clicked")


def message_unsubscribe(*, message_id: int) -> str:
    message = NurtureMessage.objects.filter(pk=message_id).first()
    if message is None:
        return ""
    suppress(email=message.to_email, reason=Suppression.Reason.UNSUBSCRIBED)
    LeadEvent.objects.create(lead_id=message.lead_id, kind=LeadEvent.Kind.NURTURE, data={"unsubscribed": True})
    return message.to_email

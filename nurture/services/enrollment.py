"""Who enters a flow, and who leaves: entry conditions, the once-at-a-time rule, exits."""

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from leads.models import Lead, LeadEvent, Validity
from leads.services.erasure import one_of
from leads.services.normalisation import normalise_email

from ..models import Enrollment, Flow, FlowStep, NurtureMessage, Suppression
from .engine import status_exit

OPEN = (Enrollment.Status.ACTIVE, Enrollment.Status.PAUSED)


def lead_may_be_nurtured(lead: Lead) -> bool:
    """Invalid, duplicate, test and suppressed leads, and leads without marketing consent, never enter a flow."""
    if not lead.email or not lead.consent or lead.validity == Validity.INVALID or lead.is_duplicate or lead.is_test:
        return False
    return not Suppression.objects.filter(email=normalise_email(lead.email)).exists()


def flow_accepts(flow: Flow, lead: Lead) -> bool:
    """The flow's entry conditions, as the one filter segments and audiences use too."""
    return Lead.objects.filter(flow.lead_filter(), pk=lead.pk).exists()


def lead_enroll(*, flow: Flow, lead: Lead, actor: User | None = None) -> Enrollment | None:
    """Put the lead at the flow's first step, unless it may not enter; None when it did not."""
    if flow.status == Flow.Status.ARCHIVED or not lead_may_be_nurtured(lead):
        return None
    if status_exit(flow, lead.status):
        return None  # it would leave at the next tick: a won lead counted as converted by a flow it never ran
    earlier = Enrollment.objects.filter(flow=flow, lead=lead)
    if earlier.filter(status__in=OPEN).exists():
        return None  # in the flow already
    last_left = earlier.exclude(status__in=OPEN).order_by("-left_at").values_list("left_at", flat=True).first()
    if last_left is not None:
        if flow.reentry_cooldown_days is None:
            return None
        if timezone.now() < last_left + timedelta(days=flow.reentry_cooldown_days):
            return None
    first = flow.steps.filter(is_retired=False).order_by("position", "id").first()
    if first is None:
        return None
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(flow=flow, lead=lead, step=first, next_run_at=timezone.now())
            FlowStep.objects.filter(pk=first.pk).update(entered=F("entered") + 1)
            LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.NURTURE, actor=actor, data={"entered": flow.name})
    except IntegrityError:
        return None  # enrolled by a concurrent trigger a moment ago
    return enrollment


def enrollments_exit(*, enrollments: QuerySet[Enrollment], reason: str) -> int:
    """Leave the flow now, with the reason; returns how many left."""
    now = timezone.now()
    leaving = list(enrollments.filter(status__in=OPEN).select_related("flow"))
    if not leaving:
        return 0
    Enrollment.objects.filter(pk__in=[e.pk for e in leaving], status__in=OPEN).update(
        status=Enrollment.Status.EXITED, left_at=now, exit_reason=reason[:200]
    )
    LeadEvent.objects.bulk_create(
        LeadEvent(lead_id=e.lead_id, kind=LeadEvent.Kind.NURTURE, data={"exited": e.flow.name, "reason": reason})
        for e in leaving
    )
    return len(leaving)


ERASED_BEFORE_SENDING = "personal data erased before sending"


def leads_erased_everywhere(*, lead_ids: list[int], **_signal: Any) -> None:
    """Erased leads leave their flows, and the messages sent to them forget the address (the leads'
    erasure transaction is still open: both happen or neither), a few statements for a whole batch."""
    erased = one_of("lead_id", lead_ids)
    enrollments_exit(enrollments=Enrollment.objects.filter(erased), reason="personal data erased")
    NurtureMessage.objects.filter(erased, status=NurtureMessage.Status.QUEUED).update(
        status=NurtureMessage.Status.SUPPRESSED, error=ERASED_BEFORE_SENDING
    )
    NurtureMessage.objects.filter(erased).exclude(to_email="", error="").update(
        to_email="",
        # A server's refusal may quote the address (errors kept before they were written without it).
        error=Case(When(error=ERASED_BEFORE_SENDING, then=Value(ERASED_BEFORE_SENDING)), default=Value("")),
    )


def email_exit_everywhere(*, email: str, reason: str) -> int:
    """An address that unsubscribed, bounced or complained leaves every flow, on every lead."""
    return enrollments_exit(enrollments=Enrollment.objects.filter(lead__email=normalise_email(email)), reason=reason)


def suppress(*, email: str, reason: str) -> Suppression | None:
    email = normalise_email(email)
    if not email:
        return None  # an erased lead's old unsubscribe link: no address to suppress
    with transaction.atomic():
        suppression, _ = Suppression.objects.get_or_create(email=email, defaults={"reason": reason})
        email_exit_everywhere(email=email, reason=reason)
    return suppression


def suppress_many(*, emails: list[str], reason: str, chunk: int = 1000) -> int:
    """Suppress a list (an import) in a few queries per thousand addresses; returns how many."""
    emails = list(dict.fromkeys(normalise_email(email) for email in emails if email.strip()))
    for start in range(0, len(emails), chunk):
        part = emails[start : start + chunk]
        with transaction.atomic():
            Suppression.objects.bulk_create(
                [Suppression(email=email, reason=reason) for email in part], ignore_conflicts=True
            )
            enrollments_exit(enrollments=Enrollment.objects.filter(lead__email__in=part), reason=reason)
    return len(emails)

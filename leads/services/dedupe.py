"""Step 4 of the pipeline: the same person for the same offer within the window is a duplicate."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import Lead, Validity
from .locking import lock_until_commit


def lock_contacts(*, offer_id: int, email: str, phone: str) -> None:
    """Serialise captures of the same contact for the same offer until the transaction ends.

    Two identical submissions racing would otherwise both see no original and both be stored
    as originals.
    """
    lock_until_commit(
        *(("lead-dedupe", offer_id, kind, value) for kind, value in (("email", email), ("phone", phone)) if value)
    )


def find_original(*, lead: Lead) -> Lead | None:
    """The earliest non-duplicate, not invalid lead with the same email or phone for the offer."""
    contact = Q()
    if lead.email:
        contact |= Q(email=lead.email)
    if lead.phone:
        contact |= Q(phone=lead.phone)
    if not contact:
        return None
    since = timezone.now() - timedelta(days=settings.LEAD_DEDUPE_WINDOW_DAYS)
    return (
        Lead.objects.filter(
            contact, offer_id=lead.offer_id, created_at__gte=since, is_duplicate=False, is_test=lead.is_test
        )
        .exclude(validity=Validity.INVALID)
        .order_by("created_at", "id")
        .only("id", "public_id")
        .first()
    )

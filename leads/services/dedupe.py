"""Step 4 of the pipeline: the same person for the same offer within the window is a duplicate."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from ..models import Lead, Validity


def _advisory_key(*parts) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_contacts(*, offer_id: int, email: str, phone: str) -> None:
    """Serialise captures of the same contact for the same offer until the transaction ends.

    Two identical submissions racing would otherwise both see no original and both be stored
    as originals. PostgreSQL: transaction-scoped advisory locks, taken in a fixed order so two
    captures never wait on each other. SQLite: every write transaction is already exclusive
    (transaction_mode IMMEDIATE in settings).
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted(
        _advisory_key("lead-dedupe", offer_id, kind, value)
        for kind, value in (("email", email), ("phone", phone))
        if value
    )
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


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

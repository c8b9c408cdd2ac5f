"""Clicks forget the visitor after their retention period: the IP address, user agent and referrer go, the
click (its campaign, source, device, country and sub ids) stays and still counts."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from ..models import Click

# What the click_visitor_kept index holds: clicks that still identify a visitor.
VISITOR_KEPT = Q(ip__isnull=False) | ~Q(user_agent="") | ~Q(referrer="")


def clicks_forget_visitors(*, before: datetime, batch_size: int) -> int:
    """Blank the IP, user agent and referrer of clicks made before `before`, oldest first, `batch_size` per
    transaction; returns how many. Clicks another run holds are skipped, and a blanked click leaves
    the index the search walks, so running twice (or two at once) blanks each click once."""
    blanked = 0
    while True:
        with transaction.atomic():
            ids = list(
                Click.objects.filter(VISITOR_KEPT, created_at__lt=before)
                .order_by("created_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if ids:
                Click.objects.filter(pk__in=ids).update(ip=None, user_agent="", referrer="")
        blanked += len(ids)
        if len(ids) < batch_size:
            return blanked

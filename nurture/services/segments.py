"""Segment-triggered flows: every lead matching a flow's conditions enters it, checked every few
minutes by a beat job. The conditions become one query, so the job's cost follows the leads that
match and are not in the flow yet, in bounded batches."""

import datetime
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from leads.models import Lead, LeadStatus, Validity

from ..models import Enrollment, Flow, Suppression
from .engine import status_exit
from .enrollment import OPEN, lead_enroll

BATCH_PER_FLOW = 1000


def segment_candidates(flow: Flow, now: datetime.datetime | None = None) -> QuerySet[Lead]:
    """Leads that match and may enter now: real, with marketing consent, not suppressed, not in the flow,
    past any cool-down, and not in a status that would take them out of it at once (won, lost...)."""
    now = now or timezone.now()
    exiting = [status for status in LeadStatus.values if status_exit(flow, status)]
    blocked = Enrollment.objects.filter(flow=flow, lead=OuterRef("pk"))
    if flow.reentry_cooldown_days is not None:
        blocked = blocked.filter(Q(status__in=OPEN) | Q(left_at__gt=now - timedelta(days=flow.reentry_cooldown_days)))
    return (
        Lead.objects.filter(flow.lead_filter(), created_at__gte=now - timedelta(days=flow.segment_days))
        .exclude(email="")
        .exclude(validity=Validity.INVALID)
        .exclude(status__in=exiting)
        .filter(is_duplicate=False, is_test=False, consent=True)
        .exclude(Exists(blocked))
        .exclude(Exists(Suppression.objects.filter(email=OuterRef("email"))))
        .select_related("traffic_source")
        .order_by("created_at", "pk")
    )


def segments_enroll(*, batch: int = BATCH_PER_FLOW) -> int:
    """Enroll the matching leads of every active segment flow; returns how many entered."""
    entered = 0
    flows = Flow.objects.filter(trigger=Flow.Trigger.SEGMENT, status=Flow.Status.ACTIVE).prefetch_related(
        "offers", "campaigns"
    )
    for flow in flows:
        for lead in segment_candidates(flow)[:batch]:
            entered += lead_enroll(flow=flow, lead=lead) is not None
    return entered

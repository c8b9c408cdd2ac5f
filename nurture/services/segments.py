"""Segment-triggered flows: every lead matching a flow's conditions enters it, checked every few
minutes by a beat job. The conditions become one query, so the job's cost follows the leads that
match and are not in the flow yet, in bounded batches."""

from datetime import timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from leads.models import Lead, Validity

from ..models import Enrollment, Flow, Suppression
from .enrollment import OPEN, lead_enroll

BATCH_PER_FLOW = 1000


def flow_conditions(flow: Flow) -> Q:
    """The flow's entry conditions as a filter on leads (empty conditions match anything)."""
    conditions = Q()
    for field, allowed in (
        ("traffic_source__kind__in", flow.traffic_source_kinds),
        ("lead_type__in", flow.lead_types),
        ("validity__in", flow.validities),
        ("qualification__in", flow.qualifications),
        ("country__in", flow.countries),
    ):
        if allowed:
            conditions &= Q(**{field: allowed})
    if flow.min_score is not None:
        conditions &= Q(score__gte=flow.min_score)
    if flow.max_score is not None:
        conditions &= Q(score__lte=flow.max_score)
    offers = [offer.pk for offer in flow.offers.all()]
    campaigns = [campaign.pk for campaign in flow.campaigns.all()]
    if offers:
        conditions &= Q(offer_id__in=offers)
    if campaigns:
        conditions &= Q(campaign_id__in=campaigns)
    return conditions


def segment_candidates(flow: Flow, now=None) -> QuerySet[Lead]:
    """Leads that match and may enter now: real, not suppressed, not in the flow, past any cool-down."""
    now = now or timezone.now()
    blocked = Enrollment.objects.filter(flow=flow, lead=OuterRef("pk"))
    if flow.reentry_cooldown_days is not None:
        blocked = blocked.filter(Q(status__in=OPEN) | Q(left_at__gt=now - timedelta(days=flow.reentry_cooldown_days)))
    return (
        Lead.objects.filter(flow_conditions(flow), created_at__gte=now - timedelta(days=flow.segment_days))
        .exclude(email="")
        .exclude(validity=Validity.INVALID)
        .filter(is_duplicate=False, is_test=False)
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

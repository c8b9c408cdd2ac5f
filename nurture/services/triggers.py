"""The outbox handler of "nurture enrollment" follow-ups: capture and status changes of a lead."""

from leads.models import Lead, LeadStatus, OutboxEntry, Qualification
from leads.services.outbox import outbox_enqueue

from ..follow_ups import ENROLLMENT
from ..models import Enrollment, Flow
from .engine import EXIT_ON_STATUS
from .enrollment import enrollments_exit, flow_accepts, lead_enroll


def status_changed_follow_up(*, lead: Lead, previous: str, **_kwargs: object) -> None:
    """In the status change's transaction: exits (won, lost, returned) and "status changed to" flows
    run through the outbox, as a nurture enrollment follow-up."""
    if lead.email:
        outbox_enqueue(lead=lead, kinds=[ENROLLMENT], payload={"status": lead.status})


def nurture_enrollment_handler(entry: OutboxEntry) -> None:
    lead = Lead.objects.select_related("traffic_source").get(pk=entry.lead_id)
    status = entry.payload.get("status")
    if status in EXIT_ON_STATUS:
        # Exits take effect now, not at the enrollment's next step; not from a flow this status starts.
        enrollments_exit(
            enrollments=Enrollment.objects.filter(lead=lead).exclude(
                flow__trigger=Flow.Trigger.STATUS, flow__trigger_status=status
            ),
            reason=EXIT_ON_STATUS[status],
        )
    if status:
        triggers = Flow.objects.filter(trigger=Flow.Trigger.STATUS, trigger_status=status)
    else:
        wanted = [Flow.Trigger.CAPTURED]
        if lead.qualification == Qualification.QUALIFIED:
            wanted.append(Flow.Trigger.QUALIFIED)
        triggers = Flow.objects.filter(trigger__in=wanted)
    if lead.status in (LeadStatus.WON, LeadStatus.LOST, LeadStatus.RETURNED) and status != lead.status:
        return  # the lead moved on since this follow-up was written
    for flow in triggers.exclude(status=Flow.Status.ARCHIVED).prefetch_related("offers", "campaigns"):
        if flow_accepts(flow, lead):
            lead_enroll(flow=flow, lead=lead)

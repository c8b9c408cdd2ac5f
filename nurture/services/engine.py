"""The tick: runs the due step of every due enrollment, in batches that workers share.

Each batch is locked with SELECT ... FOR UPDATE SKIP LOCKED, so ticks running at once on several
workers take different enrollments and no step runs twice. Emails are not sent here: a message row
and its outbox entry are written in the batch's transaction, and the outbox sends them.
"""

from collections import defaultdict
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from leadcrm.bulk import bulk_update_rows, insert_values
from leadcrm.errors import ApplicationError
from leads.models import Lead, LeadEvent, LeadStatus
from leads.services import lead_set_status
from leads.services.outbox import outbox_enqueue_bulk

from ..follow_ups import EMAIL, WEBHOOK
from ..models import AudienceMember, Enrollment, Flow, FlowStep, NurtureMessage, Suppression, branch_score
from .timing import next_send_time, wait_until

EXIT_ON_STATUS: dict[str, str] = {LeadStatus.WON: "converted", LeadStatus.LOST: "lost", LeadStatus.RETURNED: "returned"}
STEPS_PER_RUN = 20  # instant steps (branch, status, notify) one enrollment may pass in one tick


class _Batch:
    """What one batch needs, loaded once: steps of its flows, suppressions, last emails."""

    def __init__(self, due: list[Enrollment], now: datetime):
        self.now = now
        flow_ids = {e.flow_id for e in due}
        self.steps: dict[int, list[FlowStep]] = defaultdict(list)
        # Every step of the batch's flows with its flow, read once: enrollments share them.
        steps_by_id: dict[int, FlowStep] = {}
        flows: dict[int, Flow] = {}
        for step in FlowStep.objects.filter(flow_id__in=flow_ids).select_related("flow").order_by("position", "id"):
            step.flow = flows.setdefault(step.flow_id, step.flow)
            steps_by_id[step.pk] = step
            if not step.is_retired:
                self.steps[step.flow_id].append(step)
        if flow_ids - flows.keys():  # a flow without steps
            flows.update(Flow.objects.in_bulk(flow_ids - flows.keys()))
        elsewhere = {e.step_id for e in due if e.step_id} - steps_by_id.keys()  # never, unless moved by hand
        if elsewhere:
            steps_by_id.update(FlowStep.objects.in_bulk(elsewhere))
        for enrollment in due:
            enrollment.flow = flows[enrollment.flow_id]
            enrollment.step = steps_by_id.get(enrollment.step_id) if enrollment.step_id else None
        # The leads, each with the last email to its address, in one query of their own (joined to the
        # due query, every due lead would be read and sorted before the LIMIT). The frequency cap is the
        # person's: one with two leads (two offers) gets one email in the window, not two.
        last_email = (
            NurtureMessage.objects.filter(to_email=OuterRef("email"))
            .exclude(status__in=(NurtureMessage.Status.FAILED, NurtureMessage.Status.SUPPRESSED))
            .order_by("-created_at")
            .values("created_at")[:1]
        )
        leads = (
            Lead.objects.only(*_LEAD_FIELDS)
            .annotate(last_sent=Subquery(last_email))
            .in_bulk(sorted({e.lead_id for e in due}))
        )
        self.last_sent: dict[str, datetime] = {}
        for enrollment in due:
            enrollment.lead = leads[enrollment.lead_id]
            if enrollment.lead.last_sent is not None:
                self.last_sent[enrollment.lead.email] = enrollment.lead.last_sent
        emails = {e.lead.email for e in due}
        self.suppressed = set(Suppression.objects.filter(email__in=emails).values_list("email", flat=True))
        self.messages: list[dict[str, Any]] = []
        self.webhooks: list[tuple[int, dict[str, Any]]] = []
        self.entered: dict[int, int] = defaultdict(int)
        self.members: list[AudienceMember] = []
        self.events: list[LeadEvent] = []

    def next_step(self, step: FlowStep) -> FlowStep | None:
        for candidate in self.steps[step.flow_id]:
            if (candidate.position, candidate.pk) > (step.position, step.pk):
                return candidate
        return None

    def step_at(self, flow_id: int, position: int) -> FlowStep | None:
        return next((s for s in self.steps[flow_id] if s.position >= position), None)


def status_exit(flow: Flow, status: str) -> str:
    """Why a lead with this status leaves the flow ("" to stay). A flow started by that very
    status (a win-back flow for lost leads) keeps it."""
    if flow.trigger == Flow.Trigger.STATUS and flow.trigger_status == status:
        return ""
    if status in EXIT_ON_STATUS:
        return EXIT_ON_STATUS[status]
    return f"status {status}" if status in flow.exit_statuses else ""


def _exit_reason(enrollment: Enrollment, batch: _Batch) -> str:
    lead = enrollment.lead
    reason = status_exit(enrollment.flow, lead.status)
    if reason:
        return reason
    if lead.email in batch.suppressed:
        return "suppressed (unsubscribed, bounced or complained)"
    if not lead.consent:
        return "marketing consent withdrawn"
    flow = enrollment.flow
    if flow.exit_score_above is not None and lead.score > flow.exit_score_above:
        return f"score above {flow.exit_score_above}"
    return ""


def _branch_holds(step: FlowStep, enrollment: Enrollment) -> bool:
    lead = enrollment.lead
    if step.condition in (FlowStep.Condition.OPENED, FlowStep.Condition.CLICKED):
        last = enrollment.messages.order_by("-created_at", "-id").first()
        if last is None:
            return False
        return bool(last.opened_at if step.condition == FlowStep.Condition.OPENED else last.clicked_at)
    if step.condition == FlowStep.Condition.SCORE_ABOVE:
        threshold = branch_score(step.condition_value or "0")
        return threshold is not None and lead.score > threshold
    return lead.status == step.condition_value


def _run_instant(step: FlowStep, enrollment: Enrollment, batch: _Batch) -> FlowStep | None:
    """Do a step that takes no time; returns the step to go to."""
    lead = enrollment.lead
    if step.kind == FlowStep.Kind.BRANCH:
        if step.goto_position is not None and _branch_holds(step, enrollment):
            return batch.step_at(step.flow_id, step.goto_position)
        return batch.next_step(step)
    if step.kind == FlowStep.Kind.AUDIENCE:
        if step.audience_id is not None:  # its audience was deleted: the step adds no one
            batch.members.append(AudienceMember(audience_id=step.audience_id, lead=lead))
    elif step.kind == FlowStep.Kind.NOTIFY_REP:
        Lead.objects.filter(pk=lead.pk).update(next_follow_up=timezone.localdate(batch.now))
        batch.events.append(
            LeadEvent(lead=lead, kind=LeadEvent.Kind.NURTURE, data={"follow_up": "today", "flow": enrollment.flow.name})
        )
    elif step.kind == FlowStep.Kind.SET_STATUS:
        try:
            enrollment.lead = lead_set_status(
                lead=lead, status=step.new_status, actor=None, reason=f"nurture flow {enrollment.flow.name}"
            )
        except ApplicationError as error:  # a transition the lead cannot make now: noted, flow goes on
            batch.events.append(
                LeadEvent(lead=lead, kind=LeadEvent.Kind.NURTURE, data={"status_not_changed": str(error)})
            )
    return batch.next_step(step)


def _advance(enrollment: Enrollment, batch: _Batch) -> None:
    now = batch.now
    counted = enrollment.step_id  # counted when the lead reached it (or entered the flow)
    for _ in range(STEPS_PER_RUN):
        reason = _exit_reason(enrollment, batch)
        if reason:
            enrollment.status, enrollment.left_at, enrollment.exit_reason = Enrollment.Status.EXITED, now, reason
            batch.events.append(
                LeadEvent(
                    lead=enrollment.lead,
                    kind=LeadEvent.Kind.NURTURE,
                    data={"exited": enrollment.flow.name, "reason": reason},
                )
            )
            return
        step = enrollment.step
        if step is not None and step.is_retired:
            step = batch.next_step(step)
            enrollment.waiting = False  # the wait that was started belonged to the retired step
        if step is None:
            enrollment.status, enrollment.left_at, enrollment.step = Enrollment.Status.COMPLETED, now, None
            return
        enrollment.step = step
        if step.pk != counted:
            batch.entered[step.pk] += 1
            counted = step.pk
        if step.kind == FlowStep.Kind.WAIT:
            if not enrollment.waiting:
                enrollment.waiting = True
                if step.wait_minutes:
                    enrollment.next_run_at = now + timedelta(minutes=step.wait_minutes)
                else:
                    enrollment.next_run_at = wait_until(
                        now=now,
                        country=enrollment.lead.country,
                        phone=enrollment.lead.phone,
                        weekday=step.wait_until_weekday,
                        at=step.wait_until_time,
                    )
                return
            enrollment.waiting = False
            enrollment.step = batch.next_step(step)
            continue
        if step.kind == FlowStep.Kind.EMAIL:
            allowed = next_send_time(
                country=enrollment.lead.country,
                phone=enrollment.lead.phone,
                now=now,
                last_sent_at=batch.last_sent.get(enrollment.lead.email),
            )
            if allowed > now:
                enrollment.next_run_at = allowed  # quiet hours or the frequency cap: same step, later
                return
            batch.messages.append(
                {
                    "enrollment_id": enrollment.pk,
                    "lead_id": enrollment.lead_id,
                    "step_id": step.pk,
                    "to_email": enrollment.lead.email,
                    "provider_id": make_msgid(domain=settings.NURTURE_MESSAGE_ID_DOMAIN),
                }
            )
            batch.last_sent[enrollment.lead.email] = now
            enrollment.step = batch.next_step(step)
            continue
        if step.kind == FlowStep.Kind.WEBHOOK:
            batch.webhooks.append((enrollment.lead_id, {"step": step.pk, "flow": enrollment.flow.name}))
            enrollment.step = batch.next_step(step)
            continue
        enrollment.step = _run_instant(step, enrollment, batch)
    # A long chain of instant steps (or a branch looping back without a wait) continues a minute
    # later, so one tick always ends.
    enrollment.next_run_at = now + timedelta(minutes=1)


def nurture_tick(*, batch_size: int | None = None, now: datetime | None = None) -> int:
    """Run every due enrollment; returns how many were run. Cost follows the due ones only."""
    batch_size = batch_size or settings.NURTURE_TICK_BATCH
    done = 0
    while True:
        ran = _tick_batch(batch_size, now or timezone.now())
        done += ran
        if ran < batch_size:
            return done


# What the tick reads of a lead: its exits, branches, time zone and address.
_LEAD_FIELDS = ("id", "email", "consent", "status", "score", "country", "phone")


@transaction.atomic
def _tick_batch(batch_size: int, now: datetime) -> int:
    due = list(
        Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=Enrollment.Status.ACTIVE, next_run_at__lte=now, flow__status=Flow.Status.ACTIVE)
        .order_by("next_run_at")[:batch_size]
    )
    if not due:
        return 0
    batch = _Batch(due, now)
    for enrollment in due:
        _advance(enrollment, batch)
    bulk_update_rows(due, ["step", "status", "next_run_at", "waiting", "left_at", "exit_reason"])
    messages = insert_values(NurtureMessage, batch.messages, returning=("id", "lead_id"))
    outbox_enqueue_bulk(
        [
            *((lead_id, EMAIL, {"message": message_id}) for message_id, lead_id in sorted(messages)),
            *((lead_id, WEBHOOK, payload) for lead_id, payload in batch.webhooks),
        ]
    )
    LeadEvent.objects.bulk_create(batch.events)
    AudienceMember.objects.bulk_create(batch.members, ignore_conflicts=True)  # in the list already: fine
    for step_id, count in sorted(batch.entered.items()):  # in id order: concurrent ticks never deadlock
        FlowStep.objects.filter(pk=step_id).update(entered=F("entered") + count)
    return len(due)

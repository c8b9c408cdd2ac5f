"""Staff changes to flows and enrollments: pause, resume, archive, remove, move, add leads."""

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from leadcrm.errors import InvalidInput
from leads.models import Lead

from ..models import Enrollment, Flow, FlowStep
from .enrollment import enrollments_exit, lead_enroll


def flow_set_status(*, flow: Flow, status: str) -> Flow:
    """Paused flows keep their enrollments waiting; archiving one lets its leads go."""
    with transaction.atomic():
        flow.status = status
        flow.save(update_fields=["status"])  # a save, not an UPDATE: the audit trail records who did it
        if status == Flow.Status.ARCHIVED:
            enrollments_exit(enrollments=flow.enrollments.all(), reason="flow archived")
    return flow


def enrollments_pause(*, enrollments: QuerySet[Enrollment]) -> int:
    return enrollments.filter(status=Enrollment.Status.ACTIVE).update(status=Enrollment.Status.PAUSED)


def enrollments_resume(*, enrollments: QuerySet[Enrollment]) -> int:
    return enrollments.filter(status=Enrollment.Status.PAUSED).update(
        status=Enrollment.Status.ACTIVE, next_run_at=timezone.now()
    )


def enrollments_move_to_step(*, enrollments: QuerySet[Enrollment], step: FlowStep) -> int:
    if step.is_retired:
        raise InvalidInput("That step is retired; choose a current one.")
    open_ones = enrollments.filter(status__in=(Enrollment.Status.ACTIVE, Enrollment.Status.PAUSED))
    if open_ones.exclude(flow_id=step.flow_id).exists():
        raise InvalidInput("Every selected enrollment must be in the step's flow.")
    return open_ones.update(step=step, waiting=False, next_run_at=timezone.now())


def leads_add_to_flow(*, flow: Flow, leads: QuerySet[Lead], actor: User | None = None) -> int:
    """Staff put leads in a flow by hand; leads that may not enter (or are in it) are skipped."""
    return sum(1 for lead in leads.select_related("traffic_source") if lead_enroll(flow=flow, lead=lead, actor=actor))


def enrollments_remove(*, enrollments: QuerySet[Enrollment]) -> int:
    return enrollments_exit(enrollments=enrollments, reason="removed by staff")


def flow_retarget_branches(*, flow: Flow, old_positions: dict[int, int], edited: set[int]) -> int:
    """After steps were moved (dragged in the editor, which renumbers them), point each branch at the
    step it pointed at before, not at whatever now sits at that number. Branches whose target was
    edited in the same save keep what was typed. Returns how many branches were pointed again."""
    step_at = {position: step_id for step_id, position in old_positions.items()}
    steps = list(flow.steps.all())
    position_of = {step.pk: step.position for step in steps}
    moved = []
    for step in steps:
        if step.kind != FlowStep.Kind.BRANCH or step.goto_position is None or step.pk in edited:
            continue
        target = step_at.get(step.goto_position)
        if target in position_of and position_of[target] != step.goto_position:
            step.goto_position = position_of[target]
            moved.append(step)
    FlowStep.objects.bulk_update(moved, ["goto_position"])
    return len(moved)

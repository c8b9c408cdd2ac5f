"""Reads of the nurture domain: flow and step statistics, in a fixed number of queries."""

from typing import TYPE_CHECKING, TypedDict

from django.db.models import Count, Q, QuerySet

from .models import Enrollment, Flow, FlowStep

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations  # a development requirement: for the type checker only


class StepCounts(TypedDict):
    waiting: int
    exited: int
    converted: int
    sent: int
    opened: int
    clicked: int


def flows_with_statistics() -> QuerySet[Flow]:
    """Flows with entered, active, completed, converted and exited counts: one query for the list."""
    return Flow.objects.annotate(
        entered=Count("enrollments"),
        active=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.ACTIVE)),
        completed=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.COMPLETED)),
        converted=Count("enrollments", filter=Q(enrollments__exit_reason="converted")),
        exited=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.EXITED)),
    )


def step_statistics(*, flow: Flow) -> "list[WithAnnotations[FlowStep, StepCounts]]":
    """Each step of the flow with who waits at it, what it sent and what came of it: one query."""
    enrollments = Q(enrollments__isnull=False)
    return list(
        flow.steps.annotate(
            waiting=Count("enrollments", filter=enrollments & Q(enrollments__status="active"), distinct=True),
            exited=Count("enrollments", filter=enrollments & Q(enrollments__status="exited"), distinct=True),
            converted=Count("enrollments", filter=enrollments & Q(enrollments__exit_reason="converted"), distinct=True),
            sent=Count("messages", filter=Q(messages__status="sent"), distinct=True),
            opened=Count("messages", filter=Q(messages__opened_at__isnull=False), distinct=True),
            clicked=Count("messages", filter=Q(messages__clicked_at__isnull=False), distinct=True),
        ).order_by("position", "id")
    )


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _wait(step: FlowStep) -> str:
    if step.wait_minutes:
        minutes = step.wait_minutes
        if minutes % 1440 == 0:
            return f"Wait {minutes // 1440} day{'s' if minutes != 1440 else ''}"
        if minutes % 60 == 0:
            return f"Wait {minutes // 60} hour{'s' if minutes != 60 else ''}"
        return f"Wait {minutes} minutes"
    day = f" {WEEKDAYS[step.wait_until_weekday - 1]}" if step.wait_until_weekday else ""
    at = f" at {step.wait_until_time:%H:%M} (lead's time)" if step.wait_until_time else ""
    return f"Wait until{day or ' the next'}{at or ' 09:00'}"


def _branch(step: FlowStep) -> str:
    conditions: dict[str, str] = {
        FlowStep.Condition.OPENED: "the lead opened the last email",
        FlowStep.Condition.CLICKED: "the lead clicked in the last email",
        FlowStep.Condition.SCORE_ABOVE: f"the score is above {step.condition_value}",
        FlowStep.Condition.STATUS_IS: f"the status is {step.condition_value}",
    }
    condition = conditions.get(step.condition, step.condition)
    return f"If {condition}, go to step {step.goto_position}; otherwise go on"


def step_sentence(step: FlowStep) -> str:
    """One step as a person would say it."""
    if step.kind == FlowStep.Kind.WAIT:
        text = _wait(step)
    elif step.kind == FlowStep.Kind.EMAIL:
        text = f"Send the email “{step.subject}”"
    elif step.kind == FlowStep.Kind.BRANCH:
        text = _branch(step)
    elif step.kind == FlowStep.Kind.SET_STATUS:
        text = f"Set the lead's status to {step.get_new_status_display().lower()}"
    elif step.kind == FlowStep.Kind.WEBHOOK:
        text = f"Send the lead to {step.destination.name if step.destination is not None else 'a destination'}"
    elif step.kind == FlowStep.Kind.AUDIENCE:
        text = f"Add the lead to the audience {step.audience.name if step.audience is not None else '(none chosen)'}"
    else:
        text = "Ask the sales rep to follow up today"
    return f"Step {step.position}: {text}" + (" (retired, skipped)" if step.is_retired else "")


def flow_summary(flow: Flow) -> list[str]:
    """The flow's steps in order, each as a sentence: the editor's overview."""
    steps = flow.steps.select_related("destination", "audience").order_by("position", "id")
    return [step_sentence(step) for step in steps]

"""Reads of the nurture domain: flow and step statistics, in a fixed number of queries."""

from django.db.models import Count, Q, QuerySet

from .models import Enrollment, Flow, FlowStep


def flows_with_statistics() -> QuerySet[Flow]:
    """Flows with entered, active, completed, converted and exited counts: one query for the list."""
    return Flow.objects.annotate(
        entered=Count("enrollments"),
        active=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.ACTIVE)),
        completed=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.COMPLETED)),
        converted=Count("enrollments", filter=Q(enrollments__exit_reason="converted")),
        exited=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.EXITED)),
    )


def step_statistics(*, flow: Flow) -> list[FlowStep]:
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

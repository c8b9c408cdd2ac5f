"""Nurture's part of an access request (leads/services/access_request.py): the person's flow
enrollments, the emails written to them, the audiences they are in and their suppression entries.
Registered from NurtureConfig.ready, so leads never names nurture."""

from typing import Any

from django.db.models import Q

from leads.services.access_request import AccessRequest, model_row, register_access_section, rows

from ..models import AudienceMember, Enrollment, NurtureMessage, Suppression


def nurture_access_section(request: AccessRequest) -> dict[str, Any]:
    """Four queries, whatever the number of leads."""
    lead_ids = [lead.pk for lead in request.leads]
    # Suppression is by address, so it counts even for an email no lead carries any more.
    emails = {request.email, *(lead.email for lead in request.leads)} - {""}
    messages = NurtureMessage.objects.filter(Q(lead_id__in=lead_ids) | Q(to_email__in=emails))
    enrollments = Enrollment.objects.filter(lead_id__in=lead_ids).select_related("flow")
    audiences = AudienceMember.objects.filter(lead_id__in=lead_ids).select_related("audience")
    return {
        "enrollments": [{**model_row(row), "flow_name": row.flow.name} for row in enrollments.order_by("entered_at")],
        "messages": rows(messages.order_by("created_at", "id")),
        "audience_memberships": [
            {**model_row(row), "audience_name": row.audience.name} for row in audiences.order_by("added_at", "id")
        ],
        "suppressions": rows(Suppression.objects.filter(email__in=emails).order_by("created_at")),
    }


def register_nurture_access_section() -> None:
    register_access_section("nurture", nurture_access_section)

"""Step 7 of the pipeline: a 0-100 score that says which factors gave which points."""

from campaigns.models import LeadType

from ..models import Lead, Qualification, Validity

TYPE_POINTS = {LeadType.HARD: 30, LeadType.SOFT: 10}
VALIDITY_POINTS = {Validity.VALID: 25, Validity.SUSPECT: 10, Validity.INVALID: 0}
QUALIFICATION_POINTS = {Qualification.QUALIFIED: 25, Qualification.DISQUALIFIED: 0}
COMPLETENESS_FIELDS = ("email", "phone", "first_name", "last_name", "company", "country")
COMPLETENESS_POINTS = 20


def score_lead(lead: Lead) -> tuple[int, list[dict]]:
    filled = [name for name in COMPLETENESS_FIELDS if getattr(lead, name)]
    completeness = round(COMPLETENESS_POINTS * len(filled) / len(COMPLETENESS_FIELDS))
    breakdown = [
        {"factor": "lead type", "points": TYPE_POINTS[lead.lead_type], "detail": lead.lead_type},
        {"factor": "validity", "points": VALIDITY_POINTS[lead.validity], "detail": lead.validity},
        {"factor": "qualification", "points": QUALIFICATION_POINTS[lead.qualification], "detail": lead.qualification},
        {
            "factor": "completeness",
            "points": completeness,
            "detail": f"{len(filled)} of {len(COMPLETENESS_FIELDS)} contact fields",
        },
    ]
    return min(100, sum(item["points"] for item in breakdown)), breakdown

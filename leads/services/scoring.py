"""Step 7 of the pipeline: a 0-100 score that says which factors gave which points.

The gates (type, validity, qualification) say whether a lead is worth working at all; the rest
(what the person told us, how they filled the form, how soon after the ad click they wrote and
how good its source has been lately) tells the worthwhile leads apart, so a rep's list is not a wall of 97s.
"""

from typing import TypedDict

from campaigns.models import LeadType
from leadcrm.config_cache import cached

from ..models import Door, Lead, Qualification, Validity

TYPE_POINTS: dict[str, int] = {LeadType.HARD: 15, LeadType.SOFT: 5}
VALIDITY_POINTS: dict[str, int] = {Validity.VALID: 10, Validity.SUSPECT: 3, Validity.INVALID: 0}
QUALIFICATION_POINTS: dict[str, int] = {Qualification.QUALIFIED: 10, Qualification.DISQUALIFIED: 0}
COMPLETENESS_FIELDS = ("email", "phone", "first_name", "last_name", "company", "country", "zip_code")
COMPLETENESS_POINTS = 10
ANSWER_POINTS, ANSWERS_MAX = 3, 15  # each answered question, budget or company size
ENGAGEMENT_MAX = 15
RECENCY_MAX = 10
SOURCE_QUALITY_MAX = 15
SOURCE_SAMPLE = 500  # the source's latest leads its validity rate is judged on


class Factor(TypedDict):
    """One line of a lead's score breakdown."""

    factor: str
    points: int
    detail: str


def score_lead(lead: Lead) -> tuple[int, list[Factor]]:
    filled = [name for name in COMPLETENESS_FIELDS if getattr(lead, name)]
    breakdown: list[Factor] = [
        {"factor": "lead type", "points": TYPE_POINTS[lead.lead_type], "detail": lead.lead_type},
        {"factor": "validity", "points": VALIDITY_POINTS[lead.validity], "detail": lead.validity},
        {"factor": "qualification", "points": QUALIFICATION_POINTS[lead.qualification], "detail": lead.qualification},
        {
            "factor": "completeness",
            "points": round(COMPLETENESS_POINTS * len(filled) / len(COMPLETENESS_FIELDS)),
            "detail": f"{len(filled)} of {len(COMPLETENESS_FIELDS)} contact fields",
        },
        _answers(lead),
        _engagement(lead),
        _recency(lead),
        _source_quality(lead),
    ]
    return min(100, sum(item["points"] for item in breakdown)), breakdown


def _answers(lead: Lead) -> Factor:
    """What the person told us beyond contact details: quiz answers, budget, company size."""
    answered = sum(1 for value in (lead.answers or {}).values() if value not in ("", None, []))
    extras = [name for name in ("budget", "company_size") if getattr(lead, name) is not None]
    points = min(ANSWERS_MAX, ANSWER_POINTS * (answered + len(extras)))
    detail = f"{answered} answer{'s' if answered != 1 else ''}" + (f", {' and '.join(extras)}" if extras else "")
    return {"factor": "answers", "points": points, "detail": detail}


def _engagement(lead: Lead) -> Factor:
    """How the form was filled: a quiz taken step by step, a message written, a human pace."""
    points = 0
    notes: list[str] = []
    if lead.door == Door.QUIZ:
        points, notes = points + 6, [*notes, "took the quiz"]
    message_words = len((lead.message or "").split())
    if message_words >= 12:
        points, notes = points + 6, [*notes, f"wrote {message_words} words"]
    elif message_words:
        points, notes = points + 3, [*notes, "left a short message"]
    if lead.click_id or lead.tracked_click_id:
        points, notes = points + 3, [*notes, "came from a tracked click"]
    return {"factor": "engagement", "points": min(ENGAGEMENT_MAX, points), "detail": ", ".join(notes) or "form only"}


def _recency(lead: Lead) -> Factor:
    """How fresh the intent is: minutes from the ad click to the submission, when the click was tracked."""
    click = lead.tracked_click if lead.tracked_click_id else None
    if click is None:
        return {"factor": "recency", "points": 5, "detail": "no tracked click to time it from"}
    minutes = max((lead.created_at - click.created_at).total_seconds() / 60, 0)
    for limit, points in ((30, 10), (24 * 60, 6)):
        if minutes < limit:
            return {"factor": "recency", "points": points, "detail": f"sent {_duration(minutes)} after the click"}
    return {"factor": "recency", "points": 2, "detail": f"sent {_duration(minutes)} after the click"}


def _duration(minutes: float) -> str:
    if minutes < 60:
        return f"{max(int(minutes), 1)} min"
    if minutes < 48 * 60:
        return f"{int(minutes // 60)} h"
    return f"{int(minutes // (24 * 60))} days"


def _source_quality(lead: Lead) -> Factor:
    """How many of the traffic source's latest leads were valid, read by each process at most once a
    minute (config_cache's TTL): one query a minute instead of a cache round trip per lead."""

    def load() -> float | None:
        latest = list(
            Lead.objects.filter(traffic_source_id=lead.traffic_source_id, is_test=False)
            .order_by("-created_at")
            .values_list("validity", flat=True)[:SOURCE_SAMPLE]
        )
        return sum(1 for validity in latest if validity == Validity.VALID) / len(latest) if latest else None

    # A new source is read again next time: its first leads are its history.
    rate = cached("source-validity", lead.traffic_source_id, load, keep=lambda rate: rate is not None)
    if rate is None:
        return {"factor": "source quality", "points": SOURCE_QUALITY_MAX // 2, "detail": "new source, no history"}
    return {
        "factor": "source quality",
        "points": round(SOURCE_QUALITY_MAX * rate),
        "detail": f"{rate:.0%} of the source's latest leads valid",
    }

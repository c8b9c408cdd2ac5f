"""Step 6 of the pipeline: does the lead meet the offer's rules? Failed rules are the reasons."""

from decimal import Decimal, InvalidOperation
from typing import Any

from ..models import Lead, Qualification, QualificationRule
from .submission import number_text


def _lead_value(lead: Lead, field: str) -> Any:
    if field.startswith("answers."):
        return (lead.answers or {}).get(field.removeprefix("answers."))
    return getattr(lead, field, None)


def _number(value: Any) -> Decimal | None:
    try:
        number = Decimal(number_text(value))
    except (InvalidOperation, ValueError):
        return None
    # "NaN" and "Infinity" parse but are no one's budget, and comparing a NaN raises InvalidOperation.
    return number if number.is_finite() else None


def _fold(value: Any) -> str:
    return str(value).strip().casefold()


def _rule_value(rule: QualificationRule) -> str:
    # Staff write `answers.timeline == "this month"`; the quotes are not part of the value.
    return rule.value.strip().strip("\"'")


def rule_passes(rule: QualificationRule, value: Any) -> bool:
    operator = rule.operator
    if operator == QualificationRule.Operator.PRESENT:
        return value not in (None, "", [], {})
    if value in (None, "", [], {}):
        return operator in (QualificationRule.Operator.NOT_EQUALS, QualificationRule.Operator.NOT_IN)
    wanted = _rule_value(rule)
    values = value if isinstance(value, list) else [value]
    if operator in QualificationRule.NUMERIC_OPERATORS:
        number, limit = _number(value), _number(wanted)
        if number is None or limit is None:
            return False
        return {">=": number >= limit, ">": number > limit, "<=": number <= limit, "<": number < limit}[operator]
    if operator in (QualificationRule.Operator.EQUALS, QualificationRule.Operator.NOT_EQUALS):
        number, other = _number(value), _number(wanted)
        equal = (number == other) if number is not None and other is not None else _fold(value) == _fold(wanted)
        if isinstance(value, list):
            equal = _fold(wanted) in {_fold(item) for item in values}
        return equal if operator == QualificationRule.Operator.EQUALS else not equal
    if operator in (QualificationRule.Operator.IN, QualificationRule.Operator.NOT_IN):
        options = {_fold(option) for option in wanted.split(",") if option.strip()}
        found = any(_fold(item) in options for item in values)
        return found if operator == QualificationRule.Operator.IN else not found
    if operator == QualificationRule.Operator.CONTAINS:
        return any(_fold(wanted) in _fold(item) for item in values)
    return False


def qualify_lead(*, lead: Lead, rules: list[QualificationRule]) -> tuple[str, list[str]]:
    """(qualified or disqualified, reasons): the offer's own limits, then its active rules."""
    reasons = []
    offer = lead.offer
    if offer.accepted_countries and lead.country not in offer.accepted_countries:
        accepted = ", ".join(offer.accepted_countries)
        reasons.append(f"country {lead.country or '(unknown)'} is not accepted by the offer ({accepted})")
    if offer.accepted_lead_types and lead.lead_type not in offer.accepted_lead_types:
        reasons.append(f"lead type {lead.lead_type} is not accepted by the offer")
    for rule in rules:
        value = _lead_value(lead, rule.field)
        if not rule_passes(rule, value):
            shown = "(missing)" if value in (None, "", [], {}) else value
            reasons.append(f"{rule} (was {shown})")
    return (Qualification.DISQUALIFIED if reasons else Qualification.QUALIFIED), reasons

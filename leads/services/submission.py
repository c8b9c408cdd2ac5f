"""The shape every door's submission is checked against before the pipeline judges it.

A submission that fails here is structurally unusable (wrong types, no campaign, no way to
reach the person): it gets field errors and creates nothing. Everything else is stored.
"""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

MAX_WHOLE_NUMBER = 2_000_000_000  # fits the database's integer column
MAX_TEXT = 1000  # one form field; a 10 kB "name" is an attack or a mistake, not a lead
MAX_MESSAGE = 5000
MAX_ANSWERS = 50
MAX_SUB_IDS = 20
TEXT_FIELDS = {
    "action": 40,
    "email": 254,
    "phone": 40,
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "country": 60,
    "zip_code": 20,
    "click_id": 128,
    "consent_text": MAX_MESSAGE,
    "consent_version": 40,
    "message": MAX_MESSAGE,
    "user_agent": MAX_TEXT,
    "ip": 64,
}
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"", "0", "false", "no", "off", "n"}


@dataclass
class Submission:
    """A structurally sound submission: right types, trimmed strings, nothing judged yet."""

    values: dict = field(default_factory=dict)
    answers: dict = field(default_factory=dict)
    sub_ids: dict = field(default_factory=dict)
    consent: bool = False
    raw: dict = field(default_factory=dict)


class SubmissionError(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


def _text(value, limit: int, name: str, errors: dict) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        errors.setdefault(name, []).append("Must be text.")
        return ""
    text = "".join(ch for ch in str(value) if ch.isprintable() or ch in "\n\t").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates arrive through JSON escapes; no database takes them
        errors.setdefault(name, []).append("Contains characters that are not valid Unicode text.")
        return ""
    if len(text) > limit:
        errors.setdefault(name, []).append(f"Ensure this field has no more than {limit} characters.")
        return ""
    return text


def _whole_number(value, name: str, errors: dict) -> int | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).replace(",", "").strip())
        if number < 0 or number > MAX_WHOLE_NUMBER:
            raise ValueError
        return number
    except (ValueError, TypeError):
        errors.setdefault(name, []).append("Enter a whole number of 0 or more.")
        return None


def _amount(value, name: str, errors: dict) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        amount = Decimal(str(value).replace(",", "").lstrip("$€£").strip())
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
            raise InvalidOperation
        return amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        errors.setdefault(name, []).append("Enter an amount of 0 or more, like 5000 or 5000.00.")
        return None


def _boolean(value, name: str, errors: dict) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    errors.setdefault(name, []).append("Must be true or false.")
    return False


def _string_map(value, name: str, limit: int, errors: dict) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        errors.setdefault(name, []).append("Must be an object of names and values.")
        return {}
    if len(value) > limit:
        errors.setdefault(name, []).append(f"At most {limit} entries.")
        return {}
    cleaned = {}
    for key, item in value.items():
        key_text = _text(key, 60, name, errors)
        if isinstance(item, list):
            cleaned[key_text] = [_text(part, MAX_TEXT, name, errors) for part in item[:20]]
        else:
            cleaned[key_text] = _text(item, MAX_TEXT, name, errors)
    return cleaned


def parse_submission(data: Mapping) -> Submission:
    """Check types and sizes; raise SubmissionError with field errors if the shape is wrong."""
    if not isinstance(data, Mapping):
        raise SubmissionError({"non_field_errors": ["Send an object of lead fields."]})
    errors: dict[str, list[str]] = {}
    values = {name: _text(data.get(name), limit, name, errors) for name, limit in TEXT_FIELDS.items()}
    if values["ip"]:
        try:
            values["ip"] = str(ipaddress.ip_address(values["ip"]))
        except ValueError:
            errors.setdefault("ip", []).append("Enter a valid IPv4 or IPv6 address.")
    values["company_size"] = _whole_number(data.get("company_size"), "company_size", errors)
    values["budget"] = _amount(data.get("budget"), "budget", errors)
    submission = Submission(
        values=values,
        answers=_string_map(data.get("answers"), "answers", MAX_ANSWERS, errors),
        sub_ids=_string_map(data.get("sub_ids"), "sub_ids", MAX_SUB_IDS, errors),
        consent=_boolean(data.get("consent"), "consent", errors),
    )
    if not errors and not values["email"] and not values["phone"]:
        errors["non_field_errors"] = ["Give an email or a phone number."]
    if errors:
        raise SubmissionError(errors)
    submission.raw = {
        key: value
        for key, value in data.items()
        if isinstance(key, str) and key in {*TEXT_FIELDS, "company_size", "budget", "consent", "answers", "sub_ids"}
    }
    submission.raw["company_size"] = values["company_size"]
    submission.raw["budget"] = str(values["budget"]) if values["budget"] is not None else None
    return submission

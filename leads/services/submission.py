"""The shape every door's submission is checked against before the pipeline judges it.

A submission that fails here is structurally unusable (wrong types, no campaign, no way to
reach the person): it gets field errors and creates nothing. Everything else is stored.
"""

import ipaddress
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, cast

from campaigns.models import QUIZ_MAX_QUESTIONS

MAX_WHOLE_NUMBER = 2_000_000_000  # fits the database's integer column
AMOUNT_DIGITS, AMOUNT_PLACES = 12, 2  # below a trillion, in cents: fits the lead's money column
MAX_TEXT = 1000  # one form field; a 10 kB "name" is an attack or a mistake, not a lead
MAX_MESSAGE = 5000
MAP_NAME_LENGTH = 60
MAP_LIST_ITEMS = 20  # of a multiple-choice answer; further items are dropped
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"", "0", "false", "no", "off", "n"}


class FieldKind(StrEnum):
    TEXT = "text"
    IP_ADDRESS = "ip_address"
    WHOLE_NUMBER = "whole_number"
    AMOUNT = "amount"
    YES_NO = "yes_no"
    MAP = "map"  # names to texts (or, with `lists`, to lists of texts)
    UUID = "uuid"  # an id we gave out (a ping id): read as its canonical text


@dataclass(frozen=True)
class SubmissionField:
    """One field of the lead contract. parse_submission checks it, and the API's schema describes
    it (leads/api/serializers.py builds its fields from these), so both read the same limits."""

    name: str
    kind: FieldKind
    max_length: int | None = None  # text: characters; a map: characters of each value
    max_entries: int | None = None  # a map: how many names
    lists: bool = False  # a map: a value may be a list of texts (a quiz's multiple choice)
    help_text: str = ""


SUBMISSION_FIELDS = (
    SubmissionField("action", FieldKind.TEXT, 40, help_text="quote, demo, newsletter, quiz ..."),
    SubmissionField("email", FieldKind.TEXT, 254, help_text="An email or a phone is required."),
    SubmissionField("phone", FieldKind.TEXT, 40, help_text="An email or a phone is required."),
    SubmissionField("first_name", FieldKind.TEXT, 100),
    SubmissionField("last_name", FieldKind.TEXT, 100),
    SubmissionField("country", FieldKind.TEXT, 60),
    SubmissionField("company", FieldKind.TEXT, 200),
    SubmissionField("company_size", FieldKind.WHOLE_NUMBER, help_text="Employees."),
    SubmissionField("budget", FieldKind.AMOUNT, help_text="In the offer's currency."),
    SubmissionField("zip_code", FieldKind.TEXT, 20),
    SubmissionField("message", FieldKind.TEXT, MAX_MESSAGE),
    SubmissionField("click_id", FieldKind.TEXT, 128, help_text="The click id our tracking link passed on."),
    # As long as a click's sub ids (campaigns.services.clicks): a lead carries both in one map.
    SubmissionField("sub_ids", FieldKind.MAP, 255, max_entries=20, help_text="Your tracking values by name."),
    SubmissionField(
        "answers",
        FieldKind.MAP,
        MAX_TEXT,
        max_entries=QUIZ_MAX_QUESTIONS,
        lists=True,
        help_text=f"Quiz answers by question: a text, or a list of texts (the first {MAP_LIST_ITEMS} are kept).",
    ),
    SubmissionField("consent", FieldKind.YES_NO),
    SubmissionField("consent_text", FieldKind.TEXT, MAX_MESSAGE),
    SubmissionField("consent_version", FieldKind.TEXT, 40),
    SubmissionField(
        "third_party_consent_id",
        FieldKind.TEXT,
        300,
        help_text="A TrustedForm certificate URL (https://cert.trustedform.com/...) or a Jornaya LeadiD token;"
        " stored with the lead and delivered to buyers.",
    ),
    SubmissionField("ip", FieldKind.IP_ADDRESS, 64, help_text="The person's IP, not your server's."),
    SubmissionField("user_agent", FieldKind.TEXT, MAX_TEXT),
    # Read by the API door only (leads.services.inbound_ping): other doors have no supplier to quote.
    SubmissionField(
        "ping_id",
        FieldKind.UUID,
        36,
        help_text="The ping_id POST /api/v1/ping/ answered: the lead is bought at that ping's price, "
        "or refused (409, nothing stored) if the price no longer holds.",
    ),
)
FIELD_NAMES = frozenset(spec.name for spec in SUBMISSION_FIELDS)
# What forms and the CSV import cap their text at.
TEXT_FIELDS = {
    spec.name: spec.max_length
    for spec in SUBMISSION_FIELDS
    if spec.kind in (FieldKind.TEXT, FieldKind.IP_ADDRESS) and spec.max_length
}


@dataclass
class Submission:
    """A structurally sound submission: right types, trimmed strings, nothing judged yet."""

    values: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, str | list[str]] = field(default_factory=dict)
    sub_ids: dict[str, str] = field(default_factory=dict)
    consent: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


FieldErrors = dict[str, list[str]]  # field name -> messages


class SubmissionError(Exception):
    def __init__(self, errors: FieldErrors) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


NUMBER_AS_TEXT_DIGITS = 18


def _short_whole_number(value: str | int) -> bool:
    """A text, or a whole number whose text (its sign included) has at most NUMBER_AS_TEXT_DIGITS characters."""
    return isinstance(value, str) or len(str(value)) <= NUMBER_AS_TEXT_DIGITS


# Line breaks other than "\n": a lone carriage return, a line or paragraph separator (U+2028, U+2029).
LINE_BREAKS = frozenset("\r\x0b\x0c\x85\u2028\u2029")


def _printable(text: str) -> str:
    """The text without what does not print (zero-width and bidi characters, control codes). Other spaces
    (a no-break space, U+3000) and line breaks do not print either, but part words: they become a plain
    space and a newline, rather than running "Mary Ann" together."""
    return "".join(
        ch if ch.isprintable() or ch in "\n\t" else "\n" if ch in LINE_BREAKS else " " if ch.isspace() else ""
        for ch in text.replace("\r\n", "\n")
    )


def _text(value: object, limit: int | None, name: str, errors: FieldErrors) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int) or not _short_whole_number(value):
        # A zip code or a phone may come as a JSON number; a fraction or an exponent is not such a text.
        errors.setdefault(name, []).append(f"Must be text, or a whole number of up to {NUMBER_AS_TEXT_DIGITS} digits.")
        return ""
    if "\x00" in str(value):  # as forms and DRF say it; PostgreSQL stores no NUL
        errors.setdefault(name, []).append("Null characters are not allowed.")
        return ""
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates arrive through JSON escapes; no database takes them
        errors.setdefault(name, []).append("Contains characters that are not valid Unicode text.")
        return ""
    text = _printable(str(value)).strip()
    if limit is not None and len(text) > limit:  # None: no limit, as the API schema shows it
        errors.setdefault(name, []).append(f"Ensure this field has no more than {limit} characters.")
        return ""
    return text


def _storable(value: Any) -> Any:
    """The value as sent, as a JSON column can hold it: the checks read only part of a map (its first
    list items, an object as its text), and PostgreSQL refuses a NUL or a lone surrogate anywhere in it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {_storable(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


# 5,000, 1,250,000.50 or (Indian grouping) 1,00,000: commas that group digits, ending in a group of three.
THOUSANDS_COMMAS = re.compile(r"-?\d{1,3}(,\d{2,3})*,\d{3}(\.\d+)?")
DECIMAL_COMMA = re.compile(r"-?\d+,\d{1,2}")  # 5000,50 as European spreadsheets write it
# 5 000 or 5 000,50: spaces that group digits (a no-break or thin space, as French writes them).
THOUSANDS_SPACES = re.compile(r"-?\d{1,3}( \d{3})+([.,]\d+)?")


def number_text(value: object) -> str:
    """The text of a number sent with commas or spaces, as Decimal() and int() read it: thousands
    separators dropped, a decimal comma made a point. Any other comma ("1,234,56") is kept, so it is
    no number."""
    text = "".join(" " if ch.isspace() else ch for ch in str(value)).strip()  # a no-break space too
    if THOUSANDS_SPACES.fullmatch(text):
        text = text.replace(" ", "")
    if THOUSANDS_COMMAS.fullmatch(text):
        return text.replace(",", "")
    if DECIMAL_COMMA.fullmatch(text):
        return text.replace(",", ".")
    return text


def _whole_number(value: object, name: str, errors: FieldErrors) -> int | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(number_text(value))
        if number < 0 or number > MAX_WHOLE_NUMBER:
            raise ValueError
        return number
    except (ValueError, TypeError):
        errors.setdefault(name, []).append("Enter a whole number of 0 or more.")
        return None


def _amount(value: object, name: str, errors: FieldErrors) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        amount = Decimal(number_text(str(value).strip().lstrip("$€£")))
        if not amount.is_finite() or amount < 0 or amount >= 10**AMOUNT_DIGITS:
            raise InvalidOperation
        return amount.quantize(Decimal(1).scaleb(-AMOUNT_PLACES))
    except (InvalidOperation, ValueError):
        errors.setdefault(name, []).append("Enter an amount of 0 or more, like 5000 or 5000.00.")
        return None


def _boolean(value: object, name: str, errors: FieldErrors) -> bool:
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


def _string_map(value: object, spec: SubmissionField, errors: FieldErrors) -> dict[str, str | list[str]]:
    name = spec.name
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        errors.setdefault(name, []).append("Must be an object of names and values.")
        return {}
    if spec.max_entries is not None and len(value) > spec.max_entries:
        errors.setdefault(name, []).append(f"At most {spec.max_entries} entries.")
        return {}
    cleaned: dict[str, str | list[str]] = {}
    for key, item in value.items():
        key_text = _text(key, MAP_NAME_LENGTH, name, errors)
        if spec.lists and isinstance(item, list):
            cleaned[key_text] = [_text(part, spec.max_length, name, errors) for part in item[:MAP_LIST_ITEMS]]
        else:
            cleaned[key_text] = _text(item, spec.max_length, name, errors)
    return cleaned


def _ip_address(value: object, spec: SubmissionField, errors: FieldErrors) -> str:
    text = _text(value, spec.max_length, spec.name, errors)
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        errors.setdefault(spec.name, []).append("Enter a valid IPv4 or IPv6 address.")
        return ""


def _uuid(value: object, spec: SubmissionField, errors: FieldErrors) -> str:
    text = _text(value, spec.max_length, spec.name, errors)
    if not text:
        return ""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        errors.setdefault(spec.name, []).append("Not an id we gave out (a UUID).")
        return ""


_READERS: dict[FieldKind, Callable[[object, SubmissionField, FieldErrors], object]] = {
    FieldKind.TEXT: lambda value, spec, errors: _text(value, spec.max_length, spec.name, errors),
    FieldKind.IP_ADDRESS: _ip_address,
    FieldKind.WHOLE_NUMBER: lambda value, spec, errors: _whole_number(value, spec.name, errors),
    FieldKind.AMOUNT: lambda value, spec, errors: _amount(value, spec.name, errors),
    FieldKind.YES_NO: lambda value, spec, errors: _boolean(value, spec.name, errors),
    FieldKind.MAP: _string_map,
    FieldKind.UUID: _uuid,
}


def read_fields(data: Mapping[str, Any], specs: Iterable[SubmissionField], errors: FieldErrors) -> dict[str, Any]:
    """{name: value} of each field as its kind reads it; problems are added to `errors`."""
    return {spec.name: _READERS[spec.kind](data.get(spec.name), spec, errors) for spec in specs}


def parse_submission(data: Mapping[str, Any], *, door_fields: Collection[str] | None = None) -> Submission:
    """Check types and sizes; raise SubmissionError with field errors if the shape is wrong.

    `door_fields`: for a door whose senders must send nothing else (the API), the names the door
    reads itself (`campaign`); any other name outside SUBMISSION_FIELDS is then refused. Forms and
    files carry names of their own (a honeypot, extra columns) and leave it None.
    """
    if not isinstance(data, Mapping):
        raise SubmissionError({"non_field_errors": ["Send an object of lead fields."]})
    errors: FieldErrors = {}
    read = read_fields(data, SUBMISSION_FIELDS, errors)
    if door_fields is not None:
        known = FIELD_NAMES | set(door_fields)
        for name in sorted(str(name) for name in data if name not in known):
            errors[name] = ["Unknown field."]
    # What their readers return: the maps from _string_map (sub_ids has no lists), consent from _boolean.
    answers = cast(dict[str, str | list[str]], read.pop("answers"))
    sub_ids = cast(dict[str, str], read.pop("sub_ids"))
    consent = cast(bool, read.pop("consent"))
    values = read
    submission = Submission(values=values, answers=answers, sub_ids=sub_ids, consent=consent)
    if not errors and not values["email"] and not values["phone"]:
        errors["non_field_errors"] = ["Give an email or a phone number."]
    if errors:
        raise SubmissionError(errors)
    submission.raw = {
        key: _storable(value) for key, value in data.items() if isinstance(key, str) and key in FIELD_NAMES
    }
    submission.raw["company_size"] = values["company_size"]
    submission.raw["budget"] = str(values["budget"]) if values["budget"] is not None else None
    return submission

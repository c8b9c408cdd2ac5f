"""Step 1 of the pipeline: one spelling for every value, so dedupe and reports compare like with like."""

import unicodedata
from functools import lru_cache

import phonenumbers
import pycountry

from campaigns.visitor import normalise_country


def normalise_email(value: str) -> str:
    # NFC first: "é" typed as "e" and a combining accent (as some keyboards and macOS send it) is the
    # same address as the one-character "é", for duplicates and for buyers' and platforms' hashes alike.
    return unicodedata.normalize("NFC", value.strip()).lower()


# A landing form checks the number and the pipeline then normalises it: the second parse is a lookup.
@lru_cache(maxsize=256)
def normalise_phone(value: str, country: str) -> tuple[str, bool]:
    """(E.164, True) for a valid number in the lead's country (or with a +prefix); else (raw, False)."""
    raw = value.strip()
    if not raw:
        return "", True
    try:
        number = phonenumbers.parse(raw, country or None)
    except phonenumbers.NumberParseException:
        return raw, False
    if not phonenumbers.is_valid_number(number):
        return raw, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


def normalise_name(value: str) -> str:
    """Title-case only names typed in one case ("JOHN", "mary"); keep "McDonald" or "van Dijk"."""
    value = " ".join(value.split())
    if value and (value.isupper() or value.islower()):
        return value.title()
    return value


# Names people give for the UK that pycountry does not know (it knows "United Kingdom").
UK_NAMES = {"great britain", "britain", "england", "scotland", "wales", "northern ireland"}


def country_code(value: str) -> str:
    """ISO alpha-2 from a code (US, USA, UK, U.S.) or a country name (Germany, England); "" if unknown."""
    value = value.strip()
    code = normalise_country(value) or normalise_country(value.replace(".", ""))
    if code or len(value) <= 3:
        return code
    if value.casefold() in UK_NAMES:
        return "GB"
    try:
        return str(pycountry.countries.lookup(value).alpha_2)
    except LookupError:
        return ""


def phone_region(e164: str) -> str:
    """The country of a valid number in E.164 (+16505551212: US), or "" where it names none."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return "" if region in (None, "ZZ", "001") else str(region)

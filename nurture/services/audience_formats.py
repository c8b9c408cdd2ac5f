"""Each ad platform's normalisation before SHA-256 hashing, as its documentation gives it.

Meta custom audiences: email trimmed and lowercased; phone as digits with the country code and no
"+"; first and last name lowercased; country as lowercase ISO alpha-2. Google Customer Match:
email trimmed and lowercased; phone in E.164 with "+"; names lowercased; country and zip as given.
"""

from collections.abc import Mapping
from typing import Any

from leadcrm.spreadsheets import spreadsheet_safe

# Shared with buyers' suppression lists (leads), so a list uploaded from an export matches leads.
from leads.services.contact_hashes import e164 as _e164
from leads.services.contact_hashes import normalised_email as _email
from leads.services.contact_hashes import sha256

FIELDS = ("email", "phone", "first_name", "last_name", "country", "zip_code")


def _name(value: str) -> str:
    return (value or "").strip().lower()


def meta_row(lead: Mapping[str, Any]) -> list[str]:
    phone = _e164(lead["phone"], lead["country"]).lstrip("+")
    return [
        sha256(_email(lead["email"])),
        sha256(phone),
        sha256(_name(lead["first_name"])),
        sha256(_name(lead["last_name"])),
        sha256((lead["country"] or "").lower()),
    ]


def google_row(lead: Mapping[str, Any]) -> list[str]:
    return [
        sha256(_email(lead["email"])),
        sha256(_e164(lead["phone"], lead["country"])),
        sha256(_name(lead["first_name"])),
        sha256(_name(lead["last_name"])),
        (lead["country"] or "").upper(),  # Google takes country and zip unhashed
        spreadsheet_safe((lead["zip_code"] or "").strip()),
    ]


def generic_row(lead: Mapping[str, Any]) -> list[str]:
    return [sha256(_email(lead["email"])), sha256(_e164(lead["phone"], lead["country"]))]


def plain_row(lead: Mapping[str, Any]) -> list[str]:
    """Text as visitors and partners typed it, which a spreadsheet would run if it began like a formula."""
    row = [
        _email(lead["email"]),
        _e164(lead["phone"], lead["country"]) or lead["phone"],
        lead["first_name"],
        lead["last_name"],
        lead["country"],
        lead["zip_code"],
    ]
    return [spreadsheet_safe(value) for value in row]


FORMATS = {
    # format: (header, row function)
    "meta": (["email", "phone", "fn", "ln", "country"], meta_row),
    "google": (["Email", "Phone", "First Name", "Last Name", "Country", "Zip"], google_row),
    "generic": (["sha256_email", "sha256_phone"], generic_row),
    "plain": (["email", "phone", "first_name", "last_name", "country", "zip"], plain_row),
}

"""One normalisation and SHA-256 of a person's email and phone, shared by everything that matches
people by hash: the audience exports' hashed columns (nurture) and buyers' suppression lists.

Email: trimmed, in Unicode NFC and lowercased. Phone: E.164 with its "+" (parsed in the lead's
country), as the generic (DSP) and Google Customer Match exports send it; a number that is not valid
hashes to "".
"""

import hashlib

import phonenumbers

from .normalisation import normalise_email

SHA256_HEX_LENGTH = 64


def sha256(value: str) -> str:
    """The lowercase hex SHA-256 of the text; "" for no text (an empty cell, not the hash of nothing)."""
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def normalised_email(value: str) -> str:
    return normalise_email(value or "")  # as the lead's own address is stored


def e164(phone: str, country: str) -> str:
    """The number in E.164 ("+16505551212"), read in `country` unless it carries its own "+"; "" if invalid."""
    try:
        number = phonenumbers.parse(phone or "", country or None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_hash(email: str) -> str:
    return sha256(normalised_email(email))


def phone_hash(phone: str, country: str) -> str:
    return sha256(e164(phone, country))


def is_sha256_hex(value: str) -> bool:
    return len(value) == SHA256_HEX_LENGTH and all(char in "0123456789abcdef" for char in value)

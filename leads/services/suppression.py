"""Buyers' suppression lists: hashed emails and phones a buyer never wants to be sent.

Hashes arrive from the buyer's API (hashes only: contacts never travel in clear) or from staff in
the admin (a CSV of hashes, or of plain emails and phones hashed here on upload). Either way they are
hashed as the audience exports hash (contact_hashes), so a list matches the leads it names.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from campaigns.models import Advertiser
from leadcrm.csv_upload import control_character_problem
from leadcrm.errors import InvalidInput

from ..models import BuyerSuppression
from .contact_hashes import email_hash, is_sha256_hex, phone_hash

INSERT_BATCH = 5000


def _checked(hashes_by_kind: Mapping[str, Sequence[object]]) -> dict[str, list[str]]:
    """The hashes by kind, lowercased; InvalidInput naming every bad one (and nothing written)."""
    errors: dict[str, list[str]] = {}
    checked: dict[str, list[str]] = {}
    for kind, hashes in hashes_by_kind.items():
        if kind not in BuyerSuppression.Kind.values:
            errors[kind] = ["Unknown kind: use email or phone."]
            continue
        values = []
        for index, value in enumerate(hashes):
            text = value.strip().lower() if isinstance(value, str) else ""
            if not is_sha256_hex(text):
                errors.setdefault(kind, []).append(f"Item {index}: not a SHA-256 hash (64 hexadecimal characters).")
                continue
            values.append(text)
        checked[kind] = list(dict.fromkeys(values))
    if errors:
        raise InvalidInput("Some hashes are not SHA-256 hashes; nothing was changed.", extra=errors)
    return checked


def _existing(advertiser: Advertiser, kind: str, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(hashes), INSERT_BATCH):
        part = hashes[start : start + INSERT_BATCH]
        found.update(
            BuyerSuppression.objects.filter(advertiser=advertiser, kind=kind, hash__in=part).values_list(
                "hash", flat=True
            )
        )
    return found


@transaction.atomic
def buyer_suppression_add(*, advertiser: Advertiser, hashes_by_kind: Mapping[str, Sequence[object]]) -> int:
    """Add hashes to the buyer's list; returns how many were new. Adding one already listed changes
    nothing, so a buyer can send its whole list again."""
    added = 0
    for kind, hashes in _checked(hashes_by_kind).items():
        listed = _existing(advertiser, kind, hashes)
        new = [value for value in hashes if value not in listed]
        # ignore_conflicts: a hash added by a concurrent call in between is already there, not an error.
        BuyerSuppression.objects.bulk_create(
            (BuyerSuppression(advertiser=advertiser, kind=kind, hash=value) for value in new),
            batch_size=INSERT_BATCH,
            ignore_conflicts=True,
        )
        added += len(new)
    return added


@transaction.atomic
def buyer_suppression_remove(*, advertiser: Advertiser, hashes_by_kind: Mapping[str, Sequence[object]]) -> int:
    """Take hashes off the buyer's list; returns how many were on it."""
    removed = 0
    for kind, hashes in _checked(hashes_by_kind).items():
        for start in range(0, len(hashes), INSERT_BATCH):
            part = hashes[start : start + INSERT_BATCH]
            removed += BuyerSuppression.objects.filter(advertiser=advertiser, kind=kind, hash__in=part).delete()[0]
    return removed


# Column names a file may use, lowercased: the generic audience export's own header first, so an
# export of ours uploads as it is.
HASH_COLUMNS = {"sha256_email": "email", "sha256_phone": "phone", "email_sha256": "email", "phone_sha256": "phone"}
PLAIN_COLUMNS = {"email": "email", "phone": "phone"}


@dataclass
class SuppressionFile:
    """What an uploaded file holds: hashes by kind, and the lines that could not be read, with why."""

    hashes_by_kind: dict[str, list[str]] = field(default_factory=lambda: {"email": [], "phone": []})
    refused: list[str] = field(default_factory=list)


def suppression_file_read(
    *, header: Sequence[str], rows: Iterable[tuple[int, Sequence[str]]], default_country: str = ""
) -> SuppressionFile:
    """Read a CSV of hashes (sha256_email, sha256_phone) or of plain values (email, phone, and an
    optional country for phones written without their +country code; else `default_country`).

    Plain values are normalised and hashed here, exactly as the audience exports hash them; they are
    never stored. A cell that is neither a hash (in a hash column) nor a usable email or phone names
    its line and is left out; the other lines are read."""
    names = [name.strip().lower() for name in header]
    hashed = {index: HASH_COLUMNS[name] for index, name in enumerate(names) if name in HASH_COLUMNS}
    plain = {index: PLAIN_COLUMNS[name] for index, name in enumerate(names) if name in PLAIN_COLUMNS}
    country_column = names.index("country") if "country" in names else None
    found = SuppressionFile()
    if not hashed and not plain:
        found.refused.append(
            "line 1: no column named sha256_email, sha256_phone, email or phone; name the columns in the first line"
        )
        return found
    for line, cells in rows:
        problem = control_character_problem(cells, header)
        if problem:
            found.refused.append(f"line {line}: {problem}")
            continue
        country = (
            cells[country_column].strip().upper() if country_column is not None and country_column < len(cells) else ""
        )
        for index, kind in hashed.items():
            value = cells[index].strip().lower() if index < len(cells) else ""
            if not value:
                continue
            if is_sha256_hex(value):
                found.hashes_by_kind[kind].append(value)
            else:
                found.refused.append(f"line {line}: {names[index]} is not a SHA-256 hash")
        for index, kind in plain.items():
            value = cells[index].strip() if index < len(cells) else ""
            if not value:
                continue
            digest = email_hash(value) if kind == "email" else phone_hash(value, country or default_country)
            if kind == "email" and "@" not in value:
                digest = ""
            if digest:
                found.hashes_by_kind[kind].append(digest)
            else:
                why = (
                    "not an email address"
                    if kind == "email"
                    else "not a valid phone number (give its +country code or a country)"
                )
                found.refused.append(f"line {line}: {kind} is {why}")
    return found

"""Importing leads from CSV through the same pipeline as every other door.

Each row is captured in its own transaction with an idempotency key made of the file's checksum
and the row's line, so running the same file again adds nothing and an interrupted import can
simply be run again.
"""

import csv
import hashlib
import io
from collections.abc import Callable

from campaigns.models import Campaign

from ..models import Door, LeadImport
from .capture import CaptureContext, lead_capture
from .submission import TEXT_FIELDS, SubmissionError, parse_submission

MAX_FILE_BYTES = 20 * 1024 * 1024
SUB_ID_COLUMNS = ("sub1", "sub2", "sub3", "sub4", "sub5")
KNOWN_COLUMNS = {"campaign", "company_size", "budget", "consent", *TEXT_FIELDS, *SUB_ID_COLUMNS}
REPORT_HEADER = ["line", "outcome", "lead_id", "validity", "duplicate", "reasons"]


class LeadImportError(Exception):
    """The file as a whole cannot be imported (not CSV, wrong header, too big)."""


def _rows(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if len(data) > MAX_FILE_BYTES:
        raise LeadImportError(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LeadImportError("The file is not UTF-8 text; save it as CSV UTF-8.") from error
    # Only the delimiter is guessed from the start of the file. The sniffer's other guesses hold for that sample
    # only: with no "" in the first 4 kB it turns doubled quotes off, and a later "say ""hi""" is split wrongly.
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lower().replace(" ", "_") for name in next(reader, [])]
    if "campaign" not in header or not {"email", "phone"} & set(header):
        raise LeadImportError(
            "The header needs a campaign column and an email or phone column; found: "
            + (", ".join(header) or "nothing")
        )
    unknown = [name for name in header if name and name not in KNOWN_COLUMNS and not name.startswith("answers.")]
    if unknown:
        raise LeadImportError(f"Unknown columns: {', '.join(unknown)}. Quiz answers go in answers.<question> columns.")
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    return header, rows


def _row_data(header: list[str], row: list[str]) -> dict:
    data: dict = {"answers": {}, "sub_ids": {}}
    for name, cell in zip(header, row, strict=False):
        cell = cell.strip()
        if not name or cell == "":
            continue
        if name.startswith("answers."):
            data["answers"][name.removeprefix("answers.")] = cell
        elif name in SUB_ID_COLUMNS:
            data["sub_ids"][name] = cell
        else:
            data[name] = cell
    return data


def _reasons_text(errors: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{name}: {' '.join(messages)}" if name != "non_field_errors" else " ".join(messages)
        for name, messages in errors.items()
    )


def leads_import(
    *, data: bytes, file_name: str, created_by=None, progress: Callable[[int], None] | None = None
) -> LeadImport:
    """Capture every good row as a lead; report every row (created, already imported, rejected)."""
    checksum = hashlib.sha256(data).hexdigest()
    header, rows = _rows(data)
    lead_import = LeadImport.objects.create(
        file_name=file_name[:255], checksum=checksum, created_by=created_by, rows=len(rows)
    )
    campaigns = {campaign.slug: campaign for campaign in Campaign.objects.select_related("offer", "traffic_source")}
    report = io.StringIO()
    writer = csv.writer(report)
    writer.writerow(REPORT_HEADER)
    counts = {"created": 0, "already imported": 0, "rejected": 0}
    for line, row in rows:
        values = _row_data(header, row)
        campaign = campaigns.get(values.pop("campaign", ""))
        if campaign is None:
            outcome, lead, reasons = "rejected", None, "campaign: no campaign with that slug"
        else:
            try:
                submission = parse_submission(values)
            except SubmissionError as error:
                outcome, lead, reasons = "rejected", None, _reasons_text(error.errors)
            else:
                try:
                    result = lead_capture(
                        campaign=campaign,
                        submission=submission,
                        context=CaptureContext(
                            door=Door.CSV, idempotency_key=f"csv:{checksum}:{line}", actor=created_by
                        ),
                    )
                except Exception as error:
                    # A row the database refuses stops the file. The rows before it are stored (each in its own
                    # transaction), so the import says where it stopped instead of staying "running" for ever.
                    writer.writerow([line, "failed", "", "", "", f"{type(error).__name__}: {error}"])
                    _finish(lead_import, counts, report, LeadImport.Status.FAILED)
                    raise
                lead = result.lead
                outcome = "created" if result.created else "already imported"
                reasons = "; ".join(lead.validity_reasons)
        counts[outcome] += 1
        writer.writerow(
            [
                line,
                outcome,
                lead.public_id if lead else "",
                lead.validity if lead else "",
                ("yes" if lead.is_duplicate else "no") if lead else "",
                reasons,
            ]
        )
        if progress:
            progress(1)
    _finish(lead_import, counts, report, LeadImport.Status.DONE)
    return lead_import


def _finish(lead_import: LeadImport, counts: dict[str, int], report: io.StringIO, status: str) -> None:
    lead_import.created_leads = counts["created"]
    lead_import.already_imported = counts["already imported"]
    lead_import.rejected = counts["rejected"]
    lead_import.report_csv = report.getvalue()
    lead_import.status = status
    lead_import.save()

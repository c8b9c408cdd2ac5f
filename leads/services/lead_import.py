"""Importing leads from CSV through the same pipeline as every other door.

Each row is captured in its own transaction with an idempotency key made of the file's checksum
and the row's line, so running the same file again adds nothing and an interrupted import can
simply be run again.
"""

import csv
import hashlib
import io
import logging
import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import DataError, IntegrityError, transaction

from campaigns.models import Campaign
from leadcrm.csv_upload import CsvUploadError, cell_count_problem, control_character_problem, read_csv_upload
from leadcrm.errors import InvalidInput

from ..models import Door, LeadImport
from .capture import CaptureContext, lead_capture
from .submission import TEXT_FIELDS, SubmissionError, parse_submission

logger = logging.getLogger(__name__)
SUB_ID_COLUMNS = ("sub1", "sub2", "sub3", "sub4", "sub5")
KNOWN_COLUMNS = {"campaign", "company_size", "budget", "consent", *TEXT_FIELDS, *SUB_ID_COLUMNS}
ANSWERS_PREFIX = "answers."
REPORT_HEADER = ["line", "outcome", "lead_id", "validity", "duplicate", "reasons"]
PROGRESS_SECONDS = 1.0  # how often a running import writes how far it got


class LeadImportError(Exception):
    """The file as a whole cannot be imported (not CSV, wrong header, too big)."""


def _column_name(cell: str) -> str:
    """The column a header cell names: "First Name" is first_name, but a quiz answer's key keeps its case
    ("answers.homeType"), as a question's key may hold capitals and rules name it as written."""
    name = cell.strip().replace(" ", "_")
    if name.lower().startswith(ANSWERS_PREFIX):
        return ANSWERS_PREFIX + name[len(ANSWERS_PREFIX) :]
    return name.lower()


def _rows(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        raw_header, rows = read_csv_upload(data)
    except CsvUploadError as error:
        raise LeadImportError(str(error)) from error
    problem = control_character_problem(raw_header)
    if problem:
        raise LeadImportError(f"The header (line 1): {problem}. Remove it and import the file again.")
    header = [_column_name(cell) for cell in raw_header]
    if "campaign" not in header or not {"email", "phone"} & set(header):
        raise LeadImportError(
            "The header needs a campaign column and an email or phone column; found: "
            + (", ".join(header) or "nothing")
        )
    unknown = [name for name in header if name and name not in KNOWN_COLUMNS and not name.startswith(ANSWERS_PREFIX)]
    if unknown:
        raise LeadImportError(f"Unknown columns: {', '.join(unknown)}. Quiz answers go in answers.<question> columns.")
    return header, rows


def _row_data(header: list[str], row: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"answers": {}, "sub_ids": {}}
    for name, cell in zip(header, row, strict=False):
        cell = cell.strip()
        if not name or cell == "":
            continue
        if name.startswith(ANSWERS_PREFIX):
            data["answers"][name.removeprefix(ANSWERS_PREFIX)] = cell
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


def _create(
    *, data: bytes, file_name: str, created_by: User | None, status: str
) -> tuple[LeadImport, list[str], list[tuple[int, list[str]]]]:
    header, rows = _rows(data)  # a file that cannot be read is refused before anything is stored
    checksum = hashlib.sha256(data).hexdigest()
    lead_import = LeadImport.objects.create(
        file_name=file_name[:255], checksum=checksum, created_by=created_by, rows=len(rows), status=status
    )
    return lead_import, header, rows


def leads_import(
    *, data: bytes, file_name: str, created_by: User | None = None, progress: Callable[[int], None] | None = None
) -> LeadImport:
    """Import now, in this process (the management command): every row, with a report."""
    lead_import, header, rows = _create(
        data=data, file_name=file_name, created_by=created_by, status=LeadImport.Status.RUNNING
    )
    _run(lead_import, header, rows, progress)
    return lead_import


@transaction.atomic
def lead_import_enqueue(*, data: bytes, file_name: str, created_by: User | None = None) -> LeadImport:
    """Store the file and import it in a Celery worker, off the web request (the admin upload)."""
    lead_import, _, _ = _create(data=data, file_name=file_name, created_by=created_by, status=LeadImport.Status.QUEUED)
    lead_import.file.save(f"{lead_import.checksum}.csv", ContentFile(data), save=True)
    transaction.on_commit(lambda: _send(lead_import.pk))
    return lead_import


def _send(lead_import_id: int) -> None:
    from ..tasks import run_lead_import_task

    try:
        run_lead_import_task.delay(lead_import_id)
    except Exception:  # the broker's errors vary by transport; staff can run a queued import again
        logger.warning("Could not queue lead import %s; it stays queued", lead_import_id)


def lead_import_run(*, lead_import_id: int) -> LeadImport:
    """Run a queued import from its stored file; running it again adds nothing."""
    lead_import = LeadImport.objects.get(pk=lead_import_id)
    with lead_import.file.open("rb") as stored:
        header, rows = _rows(stored.read())
    LeadImport.objects.filter(pk=lead_import.pk).update(status=LeadImport.Status.RUNNING)
    _run(lead_import, header, rows, progress=None)
    return lead_import


def lead_import_send_again(*, lead_import: LeadImport) -> None:
    if not lead_import.file:
        raise InvalidInput("This import has no stored file; import the file again instead.")
    transaction.on_commit(lambda: _send(lead_import.pk))


def _run(
    lead_import: LeadImport,
    header: list[str],
    rows: list[tuple[int, list[str]]],
    progress: Callable[[int], None] | None,
) -> None:
    checksum, created_by = lead_import.checksum, lead_import.created_by
    campaigns = {campaign.slug: campaign for campaign in Campaign.objects.select_related("offer", "traffic_source")}
    report = io.StringIO()
    writer = csv.writer(report)
    writer.writerow(REPORT_HEADER)
    counts = {"created": 0, "already imported": 0, "rejected": 0}
    reported_at = time.monotonic()
    for done, (line, row) in enumerate(rows, start=1):
        values = _row_data(header, row)
        campaign = campaigns.get(values.pop("campaign", ""))
        too_many = cell_count_problem(row, header)
        problem = f"line {line} has {too_many}" if too_many else control_character_problem(row, header)
        if problem:
            outcome, lead, reasons = "rejected", None, problem
        elif campaign is None:
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
                except (DataError, IntegrityError) as error:
                    # The database refused this row's values (its transaction rolled back): the report says
                    # so and the file goes on, rather than stopping at the same row however often it is run.
                    outcome, lead, reasons = "rejected", None, f"the database refused it ({type(error).__name__})"
                except Exception as error:
                    # Anything else (the database gone, a bug) stops the file. The rows before it are stored
                    # (each in its own transaction), so the import says where it stopped instead of staying
                    # "running" for ever.
                    writer.writerow([line, "failed", "", "", "", f"{type(error).__name__}: {error}"])
                    _finish(lead_import, counts, report, LeadImport.Status.FAILED)
                    raise
                else:
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
        if time.monotonic() - reported_at >= PROGRESS_SECONDS:  # its page shows how far it got
            LeadImport.objects.filter(pk=lead_import.pk).update(rows_done=done)
            reported_at = time.monotonic()
    _finish(lead_import, counts, report, LeadImport.Status.DONE)


def _finish(lead_import: LeadImport, counts: dict[str, int], report: io.StringIO, status: str) -> None:
    lead_import.created_leads = counts["created"]
    lead_import.already_imported = counts["already imported"]
    lead_import.rejected = counts["rejected"]
    lead_import.report_csv = report.getvalue()
    lead_import.rows_done = sum(counts.values())
    lead_import.status = status
    lead_import.save()

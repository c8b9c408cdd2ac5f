"""Retention: personal data is kept for a period, then erased, blanked or deleted, by a daily beat
job (`retention_task`) or by hand (`manage.py run_retention`).

- A lead's personal data is erased (`leads_erase`, what an erasure on request erases) its offer's
  `lead_retention_days` after capture, or `LEAD_RETENTION_DAYS` when the offer sets none. The lead
  stays, counted in reports and invoices, marked erased.
- Clicks lose the visitor's IP and user agent after `CLICK_RETENTION_DAYS` (campaigns does it).
- Lead import files are deleted after `LEAD_IMPORT_FILE_RETENTION_DAYS`, and the import's report
  keeps its reason codes without the values they quoted; mail files the file backend wrote go
  after `MAIL_FILE_RETENTION_DAYS`.
- Other apps register what they keep (`register_retention_job`): nurture's audience export files, and
  the audit app's records about staff (the access log, login records and change history).

Work goes in batches of `RETENTION_BATCH_SIZE` rows per transaction. Each step picks only what is
still due and skips rows another run holds (SKIP LOCKED), so a second run, or two at once, changes
nothing twice.
"""

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Offer
from campaigns.services.retention import clicks_forget_visitors
from leadcrm.mail_files import mail_files_expire

from ..models import Lead, LeadImport
from .erasure import leads_erase, reason_code

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionJob:
    """What another app keeps and expires: `run(now=..., batch_size=...)` returns how many it expired."""

    name: str  # what it counts, e.g. "audience export files deleted"
    run: Callable[..., int]


_jobs: dict[str, RetentionJob] = {}


def register_retention_job(job: RetentionJob) -> None:
    _jobs[job.name] = job


def retention_run(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """Expire everything past its period; returns what it did, as counts by kind (and logs them:
    counts only, never whose data)."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    done = {
        "leads erased": leads_erase_past_retention(now=now, batch_size=batch_size),
        "clicks blanked": clicks_forget_visitors(
            before=now - timedelta(days=settings.CLICK_RETENTION_DAYS), batch_size=batch_size
        ),
        "lead import files deleted": lead_import_files_expire(now=now, batch_size=batch_size),
        "mail files deleted": mail_files_expire(before=now - timedelta(days=settings.MAIL_FILE_RETENTION_DAYS)),
    }
    for job in _jobs.values():
        done[job.name] = job.run(now=now, batch_size=batch_size)
    logger.info("Retention done: %s", ", ".join(f"{count} {name}" for name, count in done.items()))
    return done


def leads_erase_past_retention(*, now: datetime, batch_size: int) -> int:
    """Erase the leads captured longer ago than their offer keeps them, offer by offer, oldest
    first, `batch_size` leads per transaction; returns how many."""
    erased = 0
    for offer_id, days in Offer.objects.order_by("pk").values_list("pk", "lead_retention_days"):
        days = days or settings.LEAD_RETENTION_DAYS
        # One offer and a range of capture times: the lead_retention_due index, which holds only the
        # leads not erased yet, answers each batch without reading what earlier runs erased.
        due = Lead.objects.filter(offer_id=offer_id, created_at__lt=now - timedelta(days=days)).order_by("created_at")
        while True:
            ids = leads_erase(leads=due, limit=batch_size, event_data={"retention_days": days})
            erased += len(ids)
            if len(ids) < batch_size:
                break
    return erased


def lead_import_files_expire(*, now: datetime, batch_size: int) -> int:
    """Delete the uploaded files of imports older than LEAD_IMPORT_FILE_RETENTION_DAYS, and cut the
    values their row reports quote down to reason codes; returns how many files went."""
    before = now - timedelta(days=settings.LEAD_IMPORT_FILE_RETENTION_DAYS)
    expired = 0
    while True:
        imports = list(
            LeadImport.objects.filter(created_at__lt=before)
            .filter(~Q(file="") | Q(report_csv__contains=": "))
            .order_by("pk")
            .only("file", "report_csv")[:batch_size]
        )
        for lead_import in imports:
            # The file first, then the row: a run stopped in between deletes nothing twice (a
            # missing file is not an error) and clears the row next time.
            if lead_import.file:
                lead_import.file.delete(save=False)
                expired += 1
            LeadImport.objects.filter(pk=lead_import.pk).update(
                file="", report_csv=_report_without_values(lead_import.report_csv)
            )
        if len(imports) < batch_size:
            return expired


def _report_without_values(report: str) -> str:
    """The import's row report with each reason cut to its code ("invalid_email: a@b" ->
    "invalid_email"): the lead ids, outcomes and validity stay."""
    rows = list(csv.reader(io.StringIO(report)))
    out = io.StringIO()
    writer = csv.writer(out)
    for index, row in enumerate(rows):
        if index and row:
            row[-1] = "; ".join(reason_code(reason) for reason in row[-1].split("; ") if reason)
        writer.writerow(row)
    return out.getvalue()

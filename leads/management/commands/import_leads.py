from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from leads.services.lead_import import LeadImportError, leads_import


class Command(BaseCommand):
    help = (
        "Import leads from CSV through the lead pipeline. Columns: campaign (slug), email and/or phone, "
        "and any of action, first_name, last_name, company, company_size, budget, country, zip_code, message, "
        "click_id, consent, consent_text, ip, user_agent, sub1-sub5, answers.<question>. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--report", type=Path, help="Write the per-row report (CSV) to this file.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")

    def handle(self, *args, path: Path, report: Path | None, no_progress: bool, **options):
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from error
        bar = tqdm(desc="leads", unit="row", disable=no_progress, file=self.stderr._out)
        try:
            result = leads_import(data=data, file_name=path.name, progress=bar.update)
        except LeadImportError as error:
            raise CommandError(str(error)) from error
        finally:
            bar.close()
        if report:
            # As written: UTF-8 whatever the locale, and the csv module's \r\n line ends not translated again.
            report.write_text(result.report_csv, encoding="utf-8", newline="")
        self.stdout.write(
            f"{result.rows} rows: {result.created_leads} created, {result.already_imported} already imported, "
            f"{result.rejected} rejected (import #{result.pk})."
        )

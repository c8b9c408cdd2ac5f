from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import TrafficSource
from campaigns.services import daily_stats_import


class Command(BaseCommand):
    help = "Import a traffic source's daily stats CSV (date, campaign, impressions, clicks, spend)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--traffic-source", help="Name of the source; rows of other sources are rejected.")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the good rows even if some are rejected (default: all or nothing).",
        )

    def handle(self, *args, path: Path, traffic_source: str | None, skip_invalid: bool, **options):
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from error
        source = None
        if traffic_source:
            source = TrafficSource.objects.filter(name=traffic_source).first()
            if source is None:
                raise CommandError(f"No traffic source named {traffic_source!r}.")
        report = daily_stats_import(data=data, traffic_source=source, skip_invalid=skip_invalid)
        for row_error in report.errors:
            self.stderr.write(str(row_error))
        self.stdout.write(report.summary())
        if not report.imported:
            raise CommandError("Import failed; nothing was written.")

"""Run retention now, as the daily beat job does; safe to run again (it finds nothing more)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from leads.services.retention import retention_run


class Command(BaseCommand):
    help = (
        "Erase, blank and delete the personal data past its retention period (leads per offer or "
        "LEAD_RETENTION_DAYS, clicks, import and export files, stored mail), as the daily job does."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.RETENTION_BATCH_SIZE,
            help=f"Rows per transaction (default RETENTION_BATCH_SIZE, {settings.RETENTION_BATCH_SIZE}).",
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        done = retention_run(batch_size=options["batch_size"])
        for name, count in done.items():
            self.stdout.write(f"{count} {name}")
        self.stdout.write(self.style.SUCCESS("Retention done."))

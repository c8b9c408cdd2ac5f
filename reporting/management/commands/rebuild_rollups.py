"""Recompute the daily rollups from raw rows: a first fill for existing data, or a repair."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from reporting.services.rollups import rollups_rebuild


def _day(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a day like 2026-01-31.") from None


class Command(BaseCommand):
    help = "Rebuild the daily rollups that reports read, from leads, the ledger, daily stats and clicks."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", type=_day, help="First day to rebuild (default: all).")
        parser.add_argument("--to", dest="date_to", type=_day, help="Last day to rebuild (default: all).")

    def handle(self, *args, date_from=None, date_to=None, **options):
        buckets = rollups_rebuild(date_from=date_from, date_to=date_to)
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {buckets} daily rollup buckets."))

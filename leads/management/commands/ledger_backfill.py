"""Book in the ledger what happened before it existed; safe to run again (each entry's key is unique)."""

from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from leads.models import Lead, LeadStatus
from leads.services.ledger import ledger_post_sale_commission, ledger_sync_all_media_spend


class Command(BaseCommand):
    help = (
        "Book every day of media spend and the sale commission of every won lead in the money ledger "
        "(for data from before the ledger; running it again books nothing new)."
    )

    def handle(self, *args, **options):
        spend = ledger_sync_all_media_spend()
        won = Lead.objects.filter(status=LeadStatus.WON, is_test=False).select_related("offer").order_by("pk")
        commissions = 0
        for lead in tqdm(won.iterator(chunk_size=2000), total=won.count(), disable=not options["verbosity"]):
            with transaction.atomic():
                commissions += len(ledger_post_sale_commission(lead=lead))
        self.stdout.write(self.style.SUCCESS(f"Booked {spend} spend entries and {commissions} sale commissions."))

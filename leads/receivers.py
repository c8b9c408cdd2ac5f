"""What leads does when other apps' data changes (connected in LeadsConfig.ready)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from campaigns.models import DailyStat
from campaigns.signals import daily_stats_changed

from .services.ledger import ledger_sync_media_spend


@receiver(daily_stats_changed, dispatch_uid="ledger_books_imported_spend")
def book_imported_spend(sender, days, **kwargs) -> None:
    ledger_sync_media_spend(days=days)


@receiver(post_save, sender=DailyStat, dispatch_uid="ledger_books_saved_spend")
@receiver(post_delete, sender=DailyStat, dispatch_uid="ledger_books_deleted_spend")
def book_saved_spend(sender, instance: DailyStat, **kwargs) -> None:
    ledger_sync_media_spend(days=[(instance.campaign_id, instance.date)])

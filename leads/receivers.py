"""What leads does when other apps' data changes (connected in LeadsConfig.ready)."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from campaigns.models import DailyStat
from campaigns.signals import daily_stats_changed
from leadcrm.config_cache import config_changed

from .models import ApiKey, BlockedEmailDomain, Partner, QualificationRule, SupplierPayout, WebhookSecret
from .services.ledger import ledger_sync_media_spend

# What the intake and the delivery workers cache per process (leadcrm.config_cache) of leads' own
# models; campaigns' are in campaigns/receivers.py. Saving or deleting any of it makes every process
# read it again.
CACHED_CONFIGURATION = (ApiKey, Partner, BlockedEmailDomain, QualificationRule, SupplierPayout, WebhookSecret)
for model in CACHED_CONFIGURATION:
    post_save.connect(config_changed, sender=model, dispatch_uid=f"config_changed_save_{model._meta.label_lower}")
    post_delete.connect(config_changed, sender=model, dispatch_uid=f"config_changed_delete_{model._meta.label_lower}")
m2m_changed.connect(config_changed, sender=Partner.campaigns.through, dispatch_uid="config_changed_partner_campaigns")


@receiver(daily_stats_changed, dispatch_uid="ledger_books_imported_spend")
def book_imported_spend(sender, days, **kwargs) -> None:
    ledger_sync_media_spend(days=days)


@receiver(post_save, sender=DailyStat, dispatch_uid="ledger_books_saved_spend")
@receiver(post_delete, sender=DailyStat, dispatch_uid="ledger_books_deleted_spend")
def book_saved_spend(sender, instance: DailyStat, **kwargs) -> None:
    ledger_sync_media_spend(days=[(instance.campaign_id, instance.date)])

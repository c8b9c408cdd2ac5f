"""Each event adds its share to the daily rollups in its own transaction (connected in ReportingConfig);
a new click is folded in later (reporting.services.rollups.rollups_fold_clicks)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from campaigns.models import Campaign, Click, DailyStat, TrafficSource
from campaigns.signals import daily_stats_changed
from leads.models import Lead
from leads.signals import lead_status_changed, ledger_posted

from .services.rollups import (
    rollup_click_deleted,
    rollup_lead_captured,
    rollup_lead_deleted,
    rollup_lead_status_changed,
    rollup_ledger_posted,
    rollup_stats_changed,
    rollups_forget,
)


@receiver(post_save, sender=Lead, dispatch_uid="rollup_lead_captured")
def lead_saved(sender, instance: Lead, created: bool, raw: bool = False, **kwargs) -> None:
    # Only a new lead adds itself; later saves change what lead_status_changed reports (or nothing counted).
    if created and not raw:
        rollup_lead_captured(lead=instance)


@receiver(post_delete, sender=Lead, dispatch_uid="rollup_lead_deleted")
def lead_deleted(sender, instance: Lead, **kwargs) -> None:
    rollup_lead_deleted(lead=instance)


@receiver(lead_status_changed, dispatch_uid="rollup_lead_status_changed")
def status_changed(sender, lead: Lead, previous: str, **kwargs) -> None:
    rollup_lead_status_changed(lead=lead, previous=previous)


@receiver(ledger_posted, dispatch_uid="rollup_ledger_posted")
def money_booked(sender, entries, **kwargs) -> None:
    rollup_ledger_posted(entries=entries)


# A new click adds nothing here: the fold (rollups_fold_clicks) adds clicks in bulk, off the request path.
@receiver(post_delete, sender=Click, dispatch_uid="rollup_click_deleted")
def click_deleted(sender, instance: Click, **kwargs) -> None:
    rollup_click_deleted(click=instance)


@receiver(daily_stats_changed, dispatch_uid="rollup_stats_imported")
def stats_imported(sender, days, **kwargs) -> None:
    rollup_stats_changed(days=days)


@receiver(post_save, sender=DailyStat, dispatch_uid="rollup_stat_saved")
def stat_saved(sender, instance: DailyStat, raw: bool = False, **kwargs) -> None:
    if not raw:
        rollup_stats_changed(days=[(instance.campaign_id, instance.date)])


@receiver(post_delete, sender=DailyStat, dispatch_uid="rollup_stat_deleted")
def stat_deleted(sender, instance: DailyStat, **kwargs) -> None:
    rollup_stats_changed(days=[], deleted=instance)


@receiver(post_delete, sender=Campaign, dispatch_uid="rollups_of_a_deleted_campaign")
def campaign_deleted(sender, instance: Campaign, **kwargs) -> None:
    rollups_forget(campaign_id=instance.pk)


@receiver(post_delete, sender=TrafficSource, dispatch_uid="rollups_of_a_deleted_traffic_source")
def traffic_source_deleted(sender, instance: TrafficSource, **kwargs) -> None:
    rollups_forget(traffic_source_id=instance.pk)

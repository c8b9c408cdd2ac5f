"""Every write of the campaign domain that does more than save one row."""

from .advertisers import advertiser_for_postback_token, advertiser_postback_token_rotate
from .campaigns import campaign_activate, campaign_duplicate, campaign_pause
from .clicks import click_record
from .daily_stats import DailyStatsImportReport, daily_stats_import

__all__ = [
    "DailyStatsImportReport",
    "advertiser_for_postback_token",
    "advertiser_postback_token_rotate",
    "campaign_activate",
    "campaign_duplicate",
    "campaign_pause",
    "click_record",
    "daily_stats_import",
]

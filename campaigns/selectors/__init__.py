"""Reads that compute: campaign lists with their traffic metrics."""

from .campaigns import campaign_for_tracking, campaign_list_with_metrics, cost_per_lead, return_on_investment

__all__ = ["campaign_for_tracking", "campaign_list_with_metrics", "cost_per_lead", "return_on_investment"]

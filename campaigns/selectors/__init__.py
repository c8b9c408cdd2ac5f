"""Reads that compute: campaign lists with their metrics, and the reports."""

from .campaigns import campaign_for_tracking, campaign_list_with_metrics, cost_per_lead, return_on_investment
from .reports import DIMENSIONS, GROUPINGS, report, report_totals

__all__ = [
    "DIMENSIONS",
    "GROUPINGS",
    "campaign_for_tracking",
    "campaign_list_with_metrics",
    "cost_per_lead",
    "report",
    "report_totals",
    "return_on_investment",
]

"""Reads that compute across apps: the report, the dashboard and placement quality."""

from .reports import DIMENSIONS, GROUPINGS, report, report_totals

__all__ = ["DIMENSIONS", "GROUPINGS", "report", "report_totals"]

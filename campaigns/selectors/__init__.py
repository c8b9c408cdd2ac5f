"""Reads that compute for campaigns (reports live in the reporting app)."""

from .campaigns import campaign_for_tracking

__all__ = ["campaign_for_tracking"]

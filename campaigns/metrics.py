"""The campaign list's metrics, computed by the app that reads leads and the ledger (reporting) and
handed to campaigns through this registry, so campaigns never imports or reflects on those apps."""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Campaign

CampaignMetrics = Callable[[Sequence["Campaign"]], dict[int, dict]]
_provider: CampaignMetrics | None = None


def register_campaign_metrics(provider: CampaignMetrics) -> None:
    """`provider(campaigns)` -> {campaign id: {"media_spend", "valid_leads", "cpl", "margin", "roi", ...}}."""
    global _provider
    _provider = provider


def campaign_metrics(campaigns: Sequence["Campaign"]) -> dict[int, dict]:
    """Lifetime metrics of these campaigns (loaded with their offer); {} where no app provides them."""
    return _provider(campaigns) if _provider is not None else {}

"""The campaign list's lifetime metrics, from the one report."""

from collections.abc import Sequence

from campaigns.models import Campaign

from .reports import EARLIEST_DAY, LATEST_DAY, Row, report, report_totals


def campaign_list_metrics(campaigns: Sequence[Campaign]) -> dict[int, Row]:
    """{campaign id: report totals} over all time, in the currency of the campaign's offer (a campaign
    moved to an offer in another currency shows that currency's figures). The report's four queries."""
    campaign_ids = [campaign.pk for campaign in campaigns]
    if not campaign_ids:
        return {}
    rows = report(date_from=EARLIEST_DAY, date_to=LATEST_DAY, group_by=["campaign"], filters={"campaign": campaign_ids})
    currencies = {campaign.pk: campaign.offer.currency for campaign in campaigns}
    by_campaign: dict[int, list[Row]] = {}
    for row in rows:
        by_campaign.setdefault(row["campaign_id"], []).append(row)
    metrics = {}
    for campaign_id, campaign_rows in by_campaign.items():
        totals = report_totals(campaign_rows)
        metrics[campaign_id] = next(
            (total for total in totals if total["currency"] == currencies.get(campaign_id)), totals[0]
        )
    return metrics

"""A lead whose personal data retention erased still counts in reports, with its money."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory, ClickFactory
from leads.models import Lead
from leads.services.retention import retention_run
from leads.tests.factories import LeadFactory
from reporting.selectors.reports import report

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("from_raw", [False, True], ids=["rollups", "raw tables"])
def test_leads_erased_by_retention_still_count_in_the_report(settings, from_raw):
    settings.LEAD_RETENTION_DAYS = 30
    settings.CLICK_RETENTION_DAYS = 30
    campaign = CampaignFactory(offer__currency="USD", offer__return_window_days=10_000)
    captured = timezone.now() - timedelta(days=40)
    click = ClickFactory(campaign=campaign, created_at=captured, ip="198.51.100.7", user_agent="Mozilla/5.0")
    LeadFactory(campaign=campaign, created_at=captured, tracked_click=click)
    LeadFactory(campaign=campaign, created_at=captured, status="won", sale_amount=Decimal("200.00"))
    LeadFactory(campaign=campaign, created_at=captured, validity="invalid")

    def figures():
        (row,) = report(
            date_from=captured.date(), date_to=timezone.now().date(), group_by=["campaign"], from_raw=from_raw
        )
        return {name: row[name] for name in ("leads", "valid_leads", "converted", "tracked_clicks", "sale_revenue")}

    before = figures()
    assert retention_run()["leads erased"] == 3

    assert Lead.objects.filter(erased_at__isnull=False, email="").count() == 3
    assert figures() == before
    assert (before["leads"], before["valid_leads"], before["converted"], before["tracked_clicks"]) == (3, 2, 1, 1)

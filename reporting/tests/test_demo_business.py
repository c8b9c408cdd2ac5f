"""The demo is a business that adds up: prices, a supplier, an account, returns, margins of both signs
that a person can recompute from the ledger."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from campaigns.models import Campaign
from leads.models import Delivery, LedgerEntry, RoutePrice
from reporting.selectors.reports import EARLIEST_DAY, LATEST_DAY, report
from reporting.services.rollups import MONEY_FIELD

pytestmark = pytest.mark.django_db


def test_the_demo_margins_are_the_ledger_added_up_and_the_campaign_list_shows_them(client):
    call_command("seed_demo", force=True)
    call_command("rebuild_rollups", verbosity=0)  # the seed back-dates its leads, as `make run` does

    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    assert {"lead_sold", "lead_returned", "sale_commission", "media_spend", "payout_earned"} <= kinds
    assert RoutePrice.objects.exists()
    assert Delivery.objects.filter(status="accepted", price__isnull=False).exists()
    rows = report(date_from=EARLIEST_DAY, date_to=LATEST_DAY, group_by=["campaign"])
    margins = {row["campaign_id"]: row["margin"] for row in rows}
    assert any(margin > 0 for margin in margins.values()) and any(margin < 0 for margin in margins.values())
    for campaign in Campaign.objects.select_related("offer"):
        # Everything the P&L counts, booked for the campaign in its offer's currency.
        booked = LedgerEntry.objects.filter(
            campaign=campaign, kind__in=list(MONEY_FIELD), currency=campaign.offer.currency
        ).aggregate(total=Sum("amount"))["total"] or Decimal("0")
        assert margins[campaign.pk].quantize(Decimal("0.01")) == Decimal(booked).quantize(Decimal("0.01"))

    assert client.post("/admin/login/", {"username": "marketer", "password": "leadcrm-demo"}).status_code == 302
    page = client.get("/admin/campaigns/campaign/")
    shown = page.context["cl"].result_list
    assert all(row.metrics["media_spend"] > 0 and row.metrics["tracked_clicks"] > 0 for row in shown)
    assert {row.pk: row.metrics["margin"] for row in shown} == margins

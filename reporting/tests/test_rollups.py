"""The daily rollups stay equal to a recomputation from raw rows, whatever happens in whatever order:
captures, status changes, deliveries, returns, sales, erasures, clicks (folded in now and then) and
stats imports and deletions."""

import contextlib
import datetime
import random
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from campaigns.models import DailyStat
from campaigns.services import daily_stats_import
from campaigns.tests.factories import CampaignFactory, ClickFactory, DailyStatFactory, OfferFactory
from leadcrm.errors import ApplicationError
from leads.models import DeliveryDestination, DeliveryRoute, Lead, OutboxEntry, Partner, RoutePrice, SupplierPayout
from leads.services import lead_set_status
from leads.services.delivery import delivery_outbox_handler
from leads.services.erasure import lead_erase
from leads.services.ledger import ledger_post_capture
from leads.services.outcomes import lead_record_outcome
from leads.tests.factories import LeadFactory
from reporting.models import DailyRollup
from reporting.selectors import report
from reporting.services.rollups import rollups_fold_clicks, rollups_from_raw, rollups_rebuild, rollups_stored

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAYS = [TODAY - datetime.timedelta(days=offset) for offset in range(10)]  # a return window of 7 days


def normalised(buckets: dict) -> dict:
    """Buckets without zero figures, money to the ten-thousandth (SQLite sums decimals as floats)."""
    clean = {}
    for key, figures in buckets.items():
        rounded = {
            name: Decimal(value).quantize(Decimal("0.0001")) if isinstance(value, (Decimal, float)) else value
            for name, value in figures.items()
        }
        kept = {name: value for name, value in rounded.items() if value}
        if kept:
            clean[key] = kept
    return clean


@pytest.fixture
def world(db):
    usd = OfferFactory(currency="USD", payout_per_sale=Decimal("0"), return_window_days=7)
    eur = OfferFactory(currency="EUR", payout_per_sale=Decimal("15.00"), return_window_days=7)
    for offer, price in ((usd, "30.00"), (eur, "45.50")):
        inbox = DeliveryDestination.objects.create(
            advertiser=offer.advertiser, name="Inbox", kind="email", email_to=["buyer@example.com"]
        )
        route = DeliveryRoute.objects.create(offer=offer, destination=inbox, price_per_lead=Decimal(price))
        RoutePrice.objects.create(route=route, country="CA", price=Decimal("12.25"))
    campaigns = [
        CampaignFactory(offer=usd, slug="usd-a"),
        CampaignFactory(offer=usd, slug="usd-b"),
        CampaignFactory(offer=eur, slug="eur-c"),
    ]
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    # Paid in euros on a dollar offer: money the reports list apart.
    SupplierPayout.objects.create(
        partner=supplier, campaign=campaigns[0], amount=Decimal("4.00"), currency="EUR", basis="valid"
    )
    SupplierPayout.objects.create(
        partner=supplier, campaign=campaigns[2], amount=Decimal("7.00"), currency="EUR", basis="sold"
    )
    return campaigns, supplier


def run_story(rng: random.Random, campaigns, supplier, steps: int) -> None:
    """Random events, each through the service (or factory) the product uses for it."""

    def some_lead(condition: Q | None = None):
        leads = list(Lead.objects.filter(condition or Q()).values_list("pk", flat=True))
        return Lead.objects.get(pk=rng.choice(leads)) if leads else None

    for _ in range(steps):
        action = rng.choice(
            ("capture", "capture", "status", "sell", "return", "erase", "click", "fold", "stats", "stats", "delete")
        )
        campaign = rng.choice(campaigns)
        if action == "capture":
            day = rng.choice(DAYS)
            lead = LeadFactory(
                campaign=campaign,
                created_at=timezone.make_aware(datetime.datetime.combine(day, datetime.time(rng.randint(0, 23)))),
                country=rng.choice(("US", "CA", "")),
                device_type=rng.choice(("mobile", "desktop", "")),
                validity=rng.choice(("valid", "valid", "suspect", "invalid")),
                is_duplicate=rng.random() < 0.15,
                qualification=rng.choice(("qualified", "disqualified")),
                lead_type=rng.choice(("hard", "soft")),
                is_test=rng.random() < 0.05,
                partner=supplier if rng.random() < 0.5 else None,
            )
            ledger_post_capture(lead=lead)
        elif action == "status":
            lead = some_lead()
            status = rng.choice(("contacted", "won", "lost"))
            amount = Decimal(rng.choice(("80.00", "120.50"))) if status == "won" else None
            # Not allowed from its status, or no lead yet: nothing changes.
            with contextlib.suppress(ApplicationError, AttributeError):
                lead_set_status(lead=lead, status=status, actor=None, reason="story", sale_amount=amount)
        elif action == "sell":
            lead = some_lead(Q(validity="valid", is_duplicate=False, is_test=False, deliveries__isnull=True))
            if lead is not None and lead.status != "returned":
                delivery_outbox_handler(OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY))
        elif action == "return":
            lead = some_lead(Q(deliveries__status="accepted") & ~Q(status="returned"))
            if lead is not None:
                try:
                    lead_record_outcome(lead=lead, partner=None, kind="returned", return_reason="fraud")
                except ApplicationError:
                    lead_set_status(lead=lead, status="returned", actor=None, reason="late")  # past the window
        elif action == "erase":
            lead = some_lead()
            if lead is not None:
                lead_erase(lead=lead)
        elif action == "delete":
            # Staff delete a lead nothing was booked for, or a click, in the admin.
            lead = some_lead(Q(ledger__isnull=True))
            if lead is not None:
                lead.delete()
            click = rng.choice([*campaign.clicks.all(), None])
            if click is not None:
                click.delete()
        elif action == "fold":
            rollups_fold_clicks(settle=datetime.timedelta(0))  # the story's clicks settled long ago
        elif action == "click":
            ClickFactory(
                campaign=campaign,
                created_at=timezone.now() - datetime.timedelta(days=rng.randint(0, 9), hours=rng.randint(0, 23)),
                country=rng.choice(("US", "DE")),
                device_type=rng.choice(("mobile", "desktop")),
            )
        elif rng.random() < 0.2 and DailyStat.objects.exists():
            rng.choice(list(DailyStat.objects.all())).delete()
        elif rng.random() < 0.5:
            day = rng.choice(DAYS)
            spend = f"{rng.randint(0, 9000) / 100:.2f}"
            row = f"{day.isoformat()},{campaign.slug},{rng.randint(0, 5000)},{rng.randint(0, 300)},{spend}"
            assert daily_stats_import(data=f"date,campaign,impressions,clicks,spend\n{row}\n".encode()).imported
        else:
            day = rng.choice(DAYS)
            if not DailyStat.objects.filter(campaign=campaign, date=day).exists():
                DailyStatFactory(campaign=campaign, date=day, spend=Decimal("3.3333"), clicks=rng.randint(0, 50))


def assert_reports_agree(campaigns, when: str) -> None:
    for group_by in (["campaign"], ["day"], ["traffic_source_kind", "country"], ["offer", "device_type"], ["week"]):
        for filters in ({}, {"country": ["CA"]}, {"campaign": [campaigns[0].pk]}):
            from_rollups = report(date_from=DAYS[-1], date_to=TODAY, group_by=group_by, filters=filters)
            from_raw = report(date_from=DAYS[-1], date_to=TODAY, group_by=group_by, filters=filters, from_raw=True)
            assert from_rollups == from_raw, (when, group_by, filters)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_a_recomputation_from_raw_rows_after_a_random_story(world, seed):
    campaigns, supplier = world
    rng = random.Random(seed)

    run_story(rng, campaigns, supplier, steps=120)
    ClickFactory(campaign=campaigns[0])  # at least one click the fold has not added yet

    # The report read from rollups (and the clicks past the fold) is the report read from the raw
    # tables, for every grouping they keep; and so it is once every click is folded.
    assert_reports_agree(campaigns, "some clicks not folded yet")
    assert rollups_fold_clicks(settle=datetime.timedelta(0)) > 0
    assert_reports_agree(campaigns, "every click folded")
    fresh = normalised(rollups_from_raw())
    assert fresh  # the story did something
    assert normalised(rollups_stored()) == fresh


def test_a_rebuild_from_raw_rows_changes_nothing_and_repairs_what_drifted(world):
    campaigns, supplier = world
    run_story(random.Random(7), campaigns, supplier, steps=60)
    before = normalised(rollups_stored())
    # Something wrote behind the services' back (a bulk update): the rollups no longer agree.
    Lead.objects.filter(is_test=False).update(country="FR")
    assert normalised(rollups_stored()) != normalised(rollups_from_raw())

    call_command("rebuild_rollups", verbosity=0)
    rollups_fold_clicks(settle=datetime.timedelta(0))  # the clicks the rebuild left to the fold

    assert normalised(rollups_stored()) == normalised(rollups_from_raw())
    assert normalised(rollups_stored()) != before
    rollups_rebuild()  # twice: the same
    assert normalised(rollups_stored()) == normalised(rollups_from_raw())


def test_a_rebuild_of_some_days_leaves_the_others_alone(world):
    campaigns, _ = world
    LeadFactory(campaign=campaigns[0], created_at=timezone.now() - datetime.timedelta(days=3))
    LeadFactory(campaign=campaigns[0])
    DailyRollup.objects.filter(day=TODAY).delete()  # drifted: today's bucket is lost

    rollups_rebuild(date_from=TODAY, date_to=TODAY)

    assert normalised(rollups_stored()) == normalised(rollups_from_raw())


def test_a_rebuild_without_bounds_keeps_the_days_dated_ahead(world):
    campaigns, _ = world
    ahead = TODAY + datetime.timedelta(days=5)  # spend imported for a day to come
    DailyStatFactory(campaign=campaigns[0], date=ahead, spend=Decimal("40.00"), clicks=12)
    LeadFactory(campaign=campaigns[0])
    stored = normalised(rollups_stored())
    assert any(key for key in stored if ahead in key)

    call_command("rebuild_rollups", verbosity=0)

    assert normalised(rollups_stored()) == stored == normalised(rollups_from_raw())
    [row] = report(date_from=ahead, date_to=ahead, group_by=["campaign"])
    assert row["media_spend"] == Decimal("40.00") and row["clicks"] == 12

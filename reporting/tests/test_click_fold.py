"""Tracked clicks reach the rollups through the fold: a click is its insert alone, reports count it
from the clicks table until the fold adds it to its bucket, and the fold adds each click once."""

import datetime
import threading

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import Click
from campaigns.tests.factories import CampaignFactory, ClickFactory, LandingPageFactory
from reporting.models import ClickFold, DailyRollup
from reporting.selectors import report
from reporting.services.rollups import rollups_fold_clicks, rollups_rebuild
from reporting.tasks import fold_clicks_task

pytestmark = pytest.mark.django_db

SETTLED = datetime.timedelta(0)  # in tests every click has settled: none is still being inserted


def stored_clicks(grain: str = DailyRollup.Grain.DETAIL) -> int:
    return DailyRollup.objects.filter(grain=grain).aggregate(clicks=Sum("tracked_clicks"))["clicks"] or 0


def reported_clicks(**filters) -> int:
    today = timezone.localdate()
    rows = report(date_from=today, date_to=today, group_by=["campaign"], filters=filters)
    return sum(row["tracked_clicks"] for row in rows)


@pytest.fixture
def tracked():
    campaign = CampaignFactory(slug="push-solar")
    LandingPageFactory(campaign=campaign, slug="solar-form")
    return campaign


def test_a_tracked_click_is_reported_at_once_and_counted_in_the_rollups_after_the_fold(client, tracked):
    assert client.get("/c/push-solar/", {"country": "US"}).status_code == 302

    assert stored_clicks() == 0  # the request wrote the click alone
    assert reported_clicks() == 1  # counted from the clicks table meanwhile

    assert rollups_fold_clicks(settle=SETTLED) == 1

    assert (stored_clicks(), stored_clicks(DailyRollup.Grain.TOTAL)) == (1, 1)
    assert reported_clicks() == reported_clicks(country=["US"]) == 1
    assert ClickFold.objects.get().through_click_id == Click.objects.get().pk


def test_folding_twice_adds_nothing_the_second_time(client, tracked):
    for _ in range(3):
        client.get("/c/push-solar/")

    assert fold_clicks_task() == 0  # a minute has not passed: these clicks are left to the next fold
    assert rollups_fold_clicks(settle=SETTLED) == 3
    assert rollups_fold_clicks(settle=SETTLED) == 0

    assert stored_clicks() == reported_clicks() == 3


def test_a_fold_in_batches_moves_its_mark_batch_by_batch(tracked):
    ClickFactory.create_batch(7, campaign=tracked)

    assert rollups_fold_clicks(settle=SETTLED, batch=3) == 7

    assert stored_clicks() == reported_clicks() == 7


def test_a_click_deleted_before_or_after_the_fold_leaves_the_report(tracked):
    folded = ClickFactory(campaign=tracked)
    rollups_fold_clicks(settle=SETTLED)
    unfolded = ClickFactory(campaign=tracked)
    assert reported_clicks() == 2

    folded.delete()
    unfolded.delete()

    assert stored_clicks() == reported_clicks() == 0
    assert rollups_fold_clicks(settle=SETTLED) == 0


def test_a_rebuild_counts_the_folded_clicks_and_leaves_the_rest_to_the_fold(tracked):
    ClickFactory.create_batch(2, campaign=tracked)
    rollups_fold_clicks(settle=SETTLED)
    ClickFactory(campaign=tracked)

    rollups_rebuild()

    assert (stored_clicks(), reported_clicks()) == (2, 3)
    assert rollups_fold_clicks(settle=SETTLED) == 1
    assert stored_clicks() == reported_clicks() == 3


def test_beat_folds_clicks_every_minute():
    task = PeriodicTask.objects.get(task="reporting.tasks.fold_clicks_task")

    assert (task.enabled, task.interval.every, task.interval.period) == (True, 1, "minutes")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_folds_at_once_add_every_click_exactly_once():
    campaign = CampaignFactory()
    ClickFactory.create_batch(40, campaign=campaign)
    barrier, folded, errors = threading.Barrier(2), [], []

    def fold() -> None:
        try:
            barrier.wait(timeout=10)
            folded.append(rollups_fold_clicks(settle=SETTLED, batch=5))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fold) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(folded) == 40
    assert stored_clicks() == stored_clicks(DailyRollup.Grain.TOTAL) == 40


def test_a_campaign_with_folded_clicks_and_days_of_traffic_can_be_deleted_and_leaves_no_rollup(
    client, tracked, superuser
):
    from campaigns.tests.factories import DailyStatFactory

    other = CampaignFactory(slug="pop-solar")
    for campaign in (tracked, other):
        ClickFactory(campaign=campaign)
        DailyStatFactory(campaign=campaign, impressions=100, clicks=10, spend=0)
    assert rollups_fold_clicks(settle=SETTLED) == 2
    kept = list(DailyRollup.objects.filter(campaign=other).order_by("pk").values())
    client.force_login(superuser)

    deleted = client.post(f"/admin/campaigns/campaign/{tracked.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 302
    connection.check_constraints()  # what the commit checks: no rollup names the deleted campaign
    assert not DailyRollup.objects.filter(campaign_id=tracked.pk).exists()
    assert list(DailyRollup.objects.filter(campaign=other).order_by("pk").values()) == kept

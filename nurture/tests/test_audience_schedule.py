"""Audience exports on a schedule that staff edit in Periodic tasks (django-celery-beat)."""

import datetime
import json

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

import nurture.tasks  # noqa: F401  (beat finds the task registered, as the worker's autodiscovery does)
from leadcrm.celery import app
from leads.tests.factories import LeadFactory
from nurture.models import Audience, AudienceExport

pytestmark = pytest.mark.django_db

TASK = "nurture.tasks.export_audience_scheduled_task"


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    # Beat closes stale connections before reading the schedule; that would close the one holding the
    # test's transaction (Django's test client disconnects the same housekeeping for requests).
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)


def fire_due(scheduler: DatabaseScheduler, name: str, capture) -> bool:
    """What beat does on a tick for one entry: read the (maybe edited) schedule, send the entry if due."""
    entry = scheduler.schedule.get(name)
    if entry is None or not entry.is_due().is_due:
        return False
    with capture(execute=True):
        scheduler.apply_entry(entry, producer=None)
    return True


def test_a_schedule_edited_by_staff_takes_effect_at_the_next_read(campaign, django_capture_on_commit_callbacks):
    audience = Audience.objects.create(name="US buyers", countries=["US"])
    LeadFactory.create_batch(3, campaign=campaign, consent=True)
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    task = PeriodicTask.objects.create(
        name="US buyers to Meta",
        task=TASK,
        interval=hourly,
        args=json.dumps([audience.pk, "meta", "incremental"]),
        last_run_at=timezone.now() - datetime.timedelta(hours=2),
    )
    scheduler = DatabaseScheduler(app=app)

    assert fire_due(scheduler, task.name, django_capture_on_commit_callbacks)
    first = AudienceExport.objects.get()
    assert (first.format, first.mode, first.status, first.rows) == ("meta", "incremental", "done", 3)

    # Staff switch the schedule to a full Google export: beat reads the change, not its cached entry.
    task.refresh_from_db()
    task.args = json.dumps([audience.pk, "google", "full"])
    task.last_run_at = timezone.now() - datetime.timedelta(hours=2)
    task.save()
    assert fire_due(scheduler, task.name, django_capture_on_commit_callbacks)
    second = AudienceExport.objects.exclude(pk=first.pk).get()
    assert (second.format, second.mode, second.rows) == ("google", "full", 3)

    # Disabled: beat drops it.
    task.refresh_from_db()
    task.enabled = False
    task.save()
    assert not fire_due(scheduler, task.name, django_capture_on_commit_callbacks)
    assert AudienceExport.objects.count() == 2


def test_a_schedule_firing_twice_in_the_hour_makes_one_export(campaign, django_capture_on_commit_callbacks):
    audience = Audience.objects.create(name="All")
    LeadFactory(campaign=campaign, consent=True)
    task = PeriodicTask.objects.create(
        name="All to Meta every minute",
        task=TASK,
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES),
        args=json.dumps([audience.pk, "meta", "full"]),
        last_run_at=timezone.now() - datetime.timedelta(minutes=5),
    )
    scheduler = DatabaseScheduler(app=app)

    assert fire_due(scheduler, task.name, django_capture_on_commit_callbacks)
    entry = scheduler.schedule[task.name]
    with django_capture_on_commit_callbacks(execute=True):
        scheduler.apply_entry(entry, producer=None)

    assert AudienceExport.objects.filter(audience=audience).count() == 1

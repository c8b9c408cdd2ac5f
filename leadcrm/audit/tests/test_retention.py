"""The daily retention job deletes the records about staff past their periods: the personal data
access log and axes' login records after STAFF_LOG_RETENTION_DAYS, the change history after
AUDIT_TRAIL_RETENTION_DAYS; a day younger stays, and a second run deletes nothing more."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.admin.models import CHANGE
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leadcrm.audit.models import AccessLogEntry
from leads.services.retention import retention_run

pytestmark = pytest.mark.django_db

NOW = timezone.now()
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _periods(settings):
    settings.STAFF_LOG_RETENTION_DAYS = 365
    settings.AUDIT_TRAIL_RETENTION_DAYS = 730


def _login_records(age: timedelta, username: str) -> None:
    """A login, a failed login and a failure count, `age` old (axes stamps them with the time of saving)."""
    where = {"username": username, "ip_address": "203.0.113.7", "user_agent": "Firefox", "path_info": "/admin/login/"}
    log = AccessLog.objects.create(**where)
    failure = AccessFailureLog.objects.create(**where, locked_out=False)
    attempt = AccessAttempt.objects.create(**where, get_data="", post_data="", failures_since_start=1)
    for model, row in ((AccessLog, log), (AccessFailureLog, failure), (AccessAttempt, attempt)):
        model.objects.filter(pk=row.pk).update(attempt_time=NOW - age)


def _change(age: timedelta, name: str, user=None) -> None:
    """A change history entry `age` old: a campaign renamed; and the admin's own, when `user` made it there."""
    campaign = CampaignFactory(name=name)
    entry = LogEntry.objects.log_create(campaign, action=LogEntry.Action.UPDATE, changes={"name": ["Draft", name]})
    LogEntry.objects.filter(pk=entry.pk).update(timestamp=NOW - age)
    if user is not None:
        [admin_entry] = AdminLogEntry.objects.log_actions(user_id=user.pk, queryset=[campaign], action_flag=CHANGE)
        AdminLogEntry.objects.filter(pk=admin_entry.pk).update(action_time=NOW - age)


def test_staff_records_past_their_periods_are_deleted_and_a_day_younger_stay(superuser):
    for age, name in ((366 * DAY, "old"), (364 * DAY, "young")):
        AccessLogEntry.objects.create(
            user=superuser, username=name, kind="lead_page", path="/admin/", created_at=NOW - age
        )
        _login_records(age, name)
    _change(731 * DAY, "Old campaign", superuser)
    _change(729 * DAY, "Young campaign", superuser)

    done = retention_run(now=NOW, batch_size=2)

    assert done["access log entries deleted"] == 1
    assert done["login records deleted"] == 3
    assert done["change history entries deleted"] == 2  # the audit trail's and the admin's History's
    assert [entry.object_repr for entry in AdminLogEntry.objects.all()] == ["Young campaign"]
    assert list(AccessLogEntry.objects.values_list("username", flat=True)) == ["young"]
    for model in (AccessLog, AccessFailureLog, AccessAttempt):
        assert list(model.objects.values_list("username", flat=True)) == ["young"]
    assert [entry.object_repr for entry in LogEntry.objects.all()] == ["Young campaign"]

    again = retention_run(now=NOW, batch_size=2)
    assert again["access log entries deleted"] == again["login records deleted"] == 0
    assert again["change history entries deleted"] == 0


def test_a_backlog_goes_in_batches_until_none_is_left(superuser):
    for number in range(5):
        AccessLogEntry.objects.create(
            user=superuser, username=f"reader{number}", kind="lead_page", path="/admin/", created_at=NOW - 400 * DAY
        )
        _login_records(400 * DAY, f"user{number}")

    done = retention_run(now=NOW, batch_size=2)

    assert done["access log entries deleted"] == 5 and done["login records deleted"] == 15
    assert not AccessLogEntry.objects.exists() and not AccessLog.objects.exists() and not AccessAttempt.objects.exists()

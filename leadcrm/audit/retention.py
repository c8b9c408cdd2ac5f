"""Retention of the records about staff, which name them and where they worked from: the personal data
access log (who read which lead), the login records django-axes keeps (each login and failed attempt,
with its IP address and browser) and the change history django-auditlog and the admin keep. Registered with the
daily retention job (leads.services.retention) by the audit app."""

from datetime import datetime, timedelta

from auditlog.models import LogEntry
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.db import models, transaction

from .models import AccessLogEntry


def access_log_expire(*, now: datetime, batch_size: int) -> int:
    """Delete the access log's entries older than STAFF_LOG_RETENTION_DAYS; returns how many."""
    before = now - timedelta(days=settings.STAFF_LOG_RETENTION_DAYS)
    return _delete_before(AccessLogEntry.objects.all(), "created_at", before, batch_size)


def login_records_expire(*, now: datetime, batch_size: int) -> int:
    """Delete axes' logins, failed logins and failure counts older than STAFF_LOG_RETENTION_DAYS (long
    past any lockout); returns how many."""
    before = now - timedelta(days=settings.STAFF_LOG_RETENTION_DAYS)
    return sum(
        _delete_before(model.objects.all(), "attempt_time", before, batch_size)
        for model in (AccessLog, AccessFailureLog, AccessAttempt)
    )


def audit_trail_expire(*, now: datetime, batch_size: int) -> int:
    """Delete the change history's entries older than AUDIT_TRAIL_RETENTION_DAYS, auditlog's and the
    admin's own (each page's History, which names the staff who made each change); returns how many."""
    before = now - timedelta(days=settings.AUDIT_TRAIL_RETENTION_DAYS)
    return _delete_before(LogEntry.objects.all(), "timestamp", before, batch_size) + _delete_before(
        AdminLogEntry.objects.all(), "action_time", before, batch_size
    )


def _delete_before(rows: models.QuerySet, field: str, before: datetime, batch_size: int) -> int:
    """Oldest first, `batch_size` rows per transaction, so a long backlog never holds locks for long; rows
    another run holds are skipped, not waited for."""
    due = rows.filter(**{f"{field}__lt": before}).order_by(field).select_for_update(skip_locked=True)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(due.values_list("pk", flat=True)[:batch_size])
            if ids:
                rows.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted

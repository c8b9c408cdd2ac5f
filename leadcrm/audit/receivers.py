"""What the audit app hears: reads of personal data announced by leads and nurture (which may not
import it), and auditlog's own entries, kept free of a lead's name."""

from typing import Any

from auditlog.models import LogEntry
from auditlog.signals import pre_log
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import pre_save

from leads.models import Lead
from leads.signals import personal_data_read

from .services import access_log_record


def record_read(
    sender: object,
    *,
    user: AbstractBaseUser | AnonymousUser,
    kind: str,
    path: str,
    lead: Lead | None = None,
    rows: int | None = None,
    **kwargs: Any,
) -> None:
    access_log_record(user=user, kind=kind, path=path, lead=lead, rows=rows)


def skip_lead_capture(sender: type, *, instance: object, action: int, **kwargs: Any) -> bool:
    """Leads arrive by the thousand from forms, partners and imports; each is recorded at its creation
    in its own timeline (door, partner, time) and in the lead row. The audit trail records what happens
    to leads after that: edits, status, assignment, erasure and deletion."""
    return not (sender is Lead and action == LogEntry.Action.CREATE)


def lead_named_by_id(sender: type, *, instance: LogEntry, **kwargs: Any) -> None:
    """auditlog names an object by str(), which for a lead is the person's name or email: a lead's
    entries name it by its id instead, so the log holds no personal data to erase."""
    if instance.content_type_id == ContentType.objects.get_for_model(Lead).pk:
        instance.object_repr = f"Lead {instance.object_pk}"


def connect() -> None:
    personal_data_read.connect(record_read, dispatch_uid="audit-record-read")
    pre_log.connect(skip_lead_capture, dispatch_uid="audit-skip-lead-capture")
    pre_save.connect(lead_named_by_id, sender=LogEntry, dispatch_uid="audit-lead-named-by-id")

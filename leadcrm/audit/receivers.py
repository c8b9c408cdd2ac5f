"""What the audit app hears: reads of personal data announced by leads and nurture (which may not
import it), and auditlog's own entries, kept free of a lead's name."""

from typing import Any

from auditlog.cid import get_cid
from auditlog.models import LogEntry
from auditlog.signals import pre_log
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import pre_save
from django.utils import timezone

from leads.models import Lead
from leads.services.erasure import PERSONAL_FIELDS
from leads.signals import leads_erased, personal_data_read

from .services import access_log_record
from .tracked import HIDDEN


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


ERASED = "erased (" + ", ".join(PERSONAL_FIELDS) + ")"


def erasure_logged(sender: type, *, lead_ids: list[int], actor: User | None, **kwargs: Any) -> None:
    """Erasure blanks a batch of leads with one UPDATE (on request, or by retention), which auditlog
    does not see: one entry per lead, in the same transaction, says the personal data went and who
    had it erased (no one, for the retention job). The old values are hidden as in any lead entry."""
    now = timezone.now()
    # One short entry per lead (retention erases them by the thousand): erasure always blanks the
    # same fields (PERSONAL_FIELDS), so naming them once says as much as a line per field.
    changes = {"erased_at": ["None", str(now)], "personal data": [HIDDEN, ERASED]}
    lead_type = ContentType.objects.get_for_model(Lead)
    LogEntry.objects.bulk_create(
        LogEntry(
            content_type=lead_type,
            object_pk=str(lead_id),
            object_id=lead_id,
            object_repr=f"Lead {lead_id}",
            action=LogEntry.Action.UPDATE,
            changes=changes,
            actor_id=actor.pk if actor else None,
            actor_email=actor.email if actor else None,
            timestamp=now,
            cid=get_cid(),
        )
        for lead_id in lead_ids
    )


def connect() -> None:
    leads_erased.connect(erasure_logged, dispatch_uid="audit-erasure-logged")
    personal_data_read.connect(record_read, dispatch_uid="audit-record-read")
    pre_log.connect(skip_lead_capture, dispatch_uid="audit-skip-lead-capture")
    pre_save.connect(lead_named_by_id, sender=LogEntry, dispatch_uid="audit-lead-named-by-id")

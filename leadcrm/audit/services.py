"""Recording reads of personal data in the access log."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from leads.models import Lead

from .models import AccessLogEntry


def access_log_record(
    *,
    user: AbstractBaseUser | AnonymousUser,
    kind: str,
    path: str,
    lead: Lead | None = None,
    rows: int | None = None,
) -> AccessLogEntry:
    """One read by one staff member: a lead (`lead`) or a set of them (`rows`). A read nobody can be
    named for is a bug in the caller, not something to log as anonymous."""
    if kind not in AccessLogEntry.Kind.values:
        raise ValueError(f"unknown kind of read: {kind!r}")
    if not user.is_authenticated:
        raise ValueError("a read of personal data must have a logged-in reader")
    return AccessLogEntry.objects.create(
        user_id=user.pk,
        username=user.get_username(),
        kind=kind,
        lead=lead,
        rows=rows,
        path=path[: AccessLogEntry._meta.get_field("path").max_length or 500],
    )

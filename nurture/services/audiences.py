"""Retargeting audiences: who is in one (a segment or a static list, minus everyone we may not
market to) and its exports, streamed from a server-side cursor into a file in chunks."""

import csv
import hashlib
import io
import operator
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from typing import IO

from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign, Offer
from leadcrm.errors import InvalidInput
from leads.models import Lead, LeadStatus, Validity

from ..models import Audience, AudienceExport, AudienceMember, NurtureMessage, Suppression
from .audience_formats import FIELDS, FORMATS

CHUNK = 2000


# Who is never in an audience, whatever its conditions: leads we may not market to, by reason.
def _left_out() -> dict[str, Q]:
    return {
        "suppressed": Q(Exists(Suppression.objects.filter(email=OuterRef("email")))),
        "no_consent": Q(consent=False),
        "test": Q(is_test=True),
        "duplicate": Q(is_duplicate=True),
        "invalid": Q(validity=Validity.INVALID),
        "erased": Q(erased_at__isnull=False),
    }


def _may_market() -> Q:
    # Each rule negated on its own (not one NOT over an OR), so NOT EXISTS stays an anti-join.
    return reduce(operator.and_, (~rule for rule in _left_out().values()))


def _matching(
    audience: Audience,
    *,
    offers: Iterable[Offer] | None,
    campaigns: Iterable[Campaign] | None,
    now: datetime,
) -> QuerySet[Lead]:
    """Leads matching the audience's conditions (or its static list), before anyone is left out."""
    if audience.kind == Audience.Kind.STATIC:
        return Lead.objects.filter(Exists(AudienceMember.objects.filter(audience=audience, lead=OuterRef("pk"))))
    if offers is None and campaigns is None:
        conditions = audience.lead_filter()
    else:
        conditions = audience.lead_filter(offers=offers or (), campaigns=campaigns or ())
    if audience.statuses:
        conditions &= Q(status__in=audience.statuses)
    if audience.captured_within_days is not None:
        conditions &= Q(created_at__gte=now - timedelta(days=audience.captured_within_days))
    leads = Lead.objects.filter(conditions)
    if audience.engaged_not_converted:
        engaged = NurtureMessage.objects.filter(lead=OuterRef("pk")).filter(
            Q(opened_at__isnull=False) | Q(clicked_at__isnull=False)
        )
        leads = leads.filter(Exists(engaged)).exclude(status=LeadStatus.WON)
    return leads


def audience_leads(
    audience: Audience,
    *,
    offers: Iterable[Offer] | None = None,
    campaigns: Iterable[Campaign] | None = None,
    now: datetime | None = None,
) -> QuerySet[Lead]:
    """The audience's leads. Never: test, duplicate, invalid, erased, suppressed, or without marketing consent.

    offers and campaigns (give both): a segment's as chosen on a form, for conditions not saved yet
    (the audience may be unsaved); without them, the saved ones are read.
    """
    leads = _matching(audience, offers=offers, campaigns=campaigns, now=now or timezone.now())
    return leads.filter(_may_market())


@dataclass(frozen=True)
class AudienceSize:
    leads: int  # in the audience now
    matching: int  # matching its conditions, before the leads we may not market to are left out
    # Of the matching leads, left out because... (a lead may be left out for more than one reason)
    suppressed: int
    no_consent: int
    test: int
    duplicate: int
    invalid: int
    erased: int

    @property
    def left_out(self) -> int:
        return self.matching - self.leads


def audience_size(
    audience: Audience,
    *,
    offers: Iterable[Offer] | None = None,
    campaigns: Iterable[Campaign] | None = None,
    now: datetime | None = None,
) -> AudienceSize:
    """How many leads the audience holds now (the same filter as audience_leads) and how many of
    the matching ones are left out, by reason: one aggregate query, nothing saved."""
    leads = _matching(audience, offers=offers, campaigns=campaigns, now=now or timezone.now())
    counts = leads.order_by().aggregate(
        leads=Count("pk", filter=_may_market()),
        matching=Count("pk"),
        **{reason: Count("pk", filter=rule) for reason, rule in _left_out().items()},
    )
    return AudienceSize(**counts)


def _check_format_and_mode(format: str, mode: str) -> None:
    # A schedule's arguments are typed by staff in Periodic tasks: a typo is refused with what may be
    # used, rather than recorded as an export no worker can write (or run as a full one for "incr").
    for name, value, choices in (("format", format, AudienceExport.Format), ("mode", mode, AudienceExport.Mode)):
        if value not in choices.values:
            raise InvalidInput(f"Unknown export {name} {value!r}: use one of {', '.join(choices.values)}.")


def audience_export_request(
    *, audience: Audience, format: str, mode: str, user: User | None = None, period: str = ""
) -> AudienceExport:
    """Record an export (one per audience, format, mode and period) and run it after commit."""
    _check_format_and_mode(format, mode)
    if format == AudienceExport.Format.PLAIN and not (user and user.has_perm("nurture.export_plain_audience")):
        raise InvalidInput("Unhashed exports need the 'Can create and download unhashed audience exports' permission.")
    period = period or timezone.now().strftime("%Y-%m-%dT%H:%M:%S.%f")
    export, created = AudienceExport.objects.get_or_create(
        audience=audience, format=format, mode=mode, period=period, defaults={"created_by": user}
    )
    if created:
        from ..tasks import export_audience_task

        transaction.on_commit(lambda: export_audience_task.delay(export.pk))
    return export


def audience_conditions_changed(*, audience: Audience, changed: Iterable[str]) -> bool:
    """Note when who is in the audience changed: anything saved but its name (its kind, a condition,
    its offers or campaigns). The next incremental export of each format then holds everyone."""
    if not set(changed) - {"name"}:
        return False
    audience.conditions_changed_at = timezone.now()
    Audience.objects.filter(pk=audience.pk).update(conditions_changed_at=audience.conditions_changed_at)
    return True


# An incremental export looks back this far before the last one began: a lead written just before
# that export's query, but committed after it, is then in the next file rather than in none. A lead in
# both is uploaded twice, which the platforms take as one.
INCREMENTAL_OVERLAP = timedelta(minutes=10)


def _new_since(audience: Audience, since: datetime) -> Q:
    """What is new in the audience since then: on a static list, the leads added to it (a flow adds them
    days after capture); in a segment, the leads captured or changed since (a status, a score, a first
    open or click: what makes a lead come to match one later). A changed lead that matched before is
    uploaded again, which the platforms take as one."""
    if audience.kind == Audience.Kind.STATIC:
        return Q(Exists(AudienceMember.objects.filter(audience=audience, lead=OuterRef("pk"), added_at__gt=since)))
    return Q(created_at__gt=since) | Q(updated_at__gt=since)


def audience_export_run(*, export_id: int) -> AudienceExport:
    """Write the file, streaming leads in chunks so memory does not grow with the audience."""
    now = timezone.now()
    claimed = AudienceExport.objects.filter(pk=export_id, status=AudienceExport.Status.PENDING).update(
        status=AudienceExport.Status.RUNNING, started_at=now
    )
    export = AudienceExport.objects.select_related("audience").get(pk=export_id)
    if not claimed:
        return export  # done, or running in another worker
    # Everything after the claim fails the export with its error: a row left running would never be
    # taken again.
    try:
        _check_format_and_mode(export.format, export.mode)  # a row recorded some other way
        leads = audience_leads(export.audience, now=now)
        if export.mode == AudienceExport.Mode.INCREMENTAL:
            previous = (
                AudienceExport.objects.filter(
                    audience=export.audience, format=export.format, status=AudienceExport.Status.DONE
                )
                .exclude(pk=export.pk)
                .order_by("-started_at")
                .first()
            )
            if previous is not None and previous.started_at is not None:
                changed_at = export.audience.conditions_changed_at
                # The last file was written under other conditions: leads that match only the new ones (in
                # DE, when US became US and DE) are in no file, however long ago they were captured. With the
                # look-back: that export may have read the conditions just before the change was committed.
                if changed_at is not None and previous.started_at - INCREMENTAL_OVERLAP < changed_at:
                    export.note = "Everyone: the audience's conditions changed since the last export."
                else:
                    export.since = previous.started_at
                    leads = leads.filter(_new_since(export.audience, previous.started_at - INCREMENTAL_OVERLAP))
        header, row_of = FORMATS[export.format]
        digest, rows, size = hashlib.sha256(), 0, 0
        AudienceExport.objects.filter(pk=export.pk).update(rows_total=leads.order_by().count())
        with tempfile.TemporaryFile() as spool:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(header)
            for lead in leads.order_by().values(*FIELDS).iterator(chunk_size=CHUNK):
                writer.writerow(row_of(lead))
                rows += 1
                if rows % CHUNK == 0:
                    size += _flush(buffer, spool, digest)
                    AudienceExport.objects.filter(pk=export.pk).update(rows=rows)  # progress on its page
            size += _flush(buffer, spool, digest)
            spool.seek(0)
            name = default_storage.save(
                f"audience-exports/{export.audience_id}-{export.format}-{export.pk}.csv", File(spool)
            )
    except Exception as error:
        AudienceExport.objects.filter(pk=export.pk).update(
            status=AudienceExport.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:500],
            finished_at=timezone.now(),
        )
        raise
    AudienceExport.objects.filter(pk=export.pk).update(
        status=AudienceExport.Status.DONE,
        rows=rows,
        file=name,
        file_size=size,
        checksum=digest.hexdigest(),
        since=export.since,
        note=export.note,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def _flush(buffer: io.StringIO, spool: IO[bytes], digest: "hashlib._Hash") -> int:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    spool.write(data)
    digest.update(data)
    return len(data)

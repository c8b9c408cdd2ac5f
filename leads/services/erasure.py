"""Erasing a person's data from a lead on their request (right to erasure)."""

import datetime
import functools
import json
import operator
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, Func, JSONField, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import Click

from ..models import (
    AuctionBid,
    CallLog,
    Delivery,
    DeliveryAttempt,
    IdempotencyRecord,
    Lead,
    LeadEvent,
    LeadNote,
    LeadOutcome,
    OutboxEntry,
    PartnerNotification,
    SupplierPing,
)
from ..signals import leads_erased
from .consent import consent_certificates_erase
from .outbox import follow_up_kinds

_PING_PERSONAL_FIELDS = ("answers", "zip_prefix")

# What identifies the person, blanked. What the lead counts for stays: campaign, source, offer,
# country, device, judgement, status and money, so reports and invoices stay true.
PERSONAL_FIELDS: dict[str, Any] = {
    "email": "",
    "phone": "",
    "first_name": "",
    "last_name": "",
    "company": "",
    "zip_code": "",
    "message": "",
    "answers": {},
    "raw_data": {},
    "ip": None,
    "user_agent": "",
    "consent_ip": None,
    "status_reason": "",
}
# third_party_consent_id stays: it is the supplier's proof of consent at TrustedForm or Jornaya, an id
# that names no one here, and buyers may still ask for it on a lead they paid for.
# Free text in a timeline event (notes, call notes, reasons typed or echoed back): dropped.
_EVENT_TEXT_KEYS = ("note", "notes", "reason", "body", "message")
_ERASED = "erased on request"


def reason_code(reason: str) -> str:
    """A judgement's reason without the value it quotes: "invalid_email: <address>" -> "invalid_email",
    "budget >= 1000 (was 500)" -> "budget >= 1000". The quoted value goes first, whatever it holds (a
    colon, a line break): "notes contains roof (was Ann: call me)" -> "notes contains roof"."""
    rule, quoted, _value = reason.partition(" (was ")
    reason = rule if quoted else reason
    return reason.split(":", 1)[0] if ": " in reason else reason


def _scrubbed(data: dict[str, Any]) -> dict[str, Any]:
    data = {key: value for key, value in data.items() if key not in _EVENT_TEXT_KEYS}
    if isinstance(data.get("reasons"), list):
        data["reasons"] = [reason_code(str(reason)) for reason in data["reasons"]]
    return data


def _scrub_data(rows: QuerySet[Any]) -> None:
    """Drop the free text from the `data` of these rows, in one UPDATE for those that had some
    (a statement per thousand rows on SQLite, whose statements take fewer parameters)."""
    changed = []
    for row in rows.only("data"):
        if (scrubbed := _scrubbed(row.data)) != row.data:
            row.data = scrubbed
            changed.append(row)
    rows.model.objects.bulk_update(changed, ["data"])


# A phone as the pipeline stores a valid one (E.164); an invalid one is stored as typed.
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def same_person_leads(leads: Iterable[Lead]) -> list[Lead]:
    """The given leads and every other lead with one of their email addresses or phone numbers (one
    query): a person's request covers all we hold about them, not only the row staff picked. Only a
    real address or a valid number ties leads together: strangers share "0000000000" or "n/a"."""
    leads = list(leads)
    emails = {lead.email for lead in leads if "@" in lead.email.strip("@")}
    phones = {lead.phone for lead in leads if _E164.fullmatch(lead.phone)}
    found = Q(pk__in=[lead.pk for lead in leads]) | Q(email__in=emails) | Q(phone__in=phones)
    return list(Lead.objects.filter(found, erased_at__isnull=True).select_related("offer").order_by("pk"))


def lead_erase(*, lead: Lead, actor: User | None = None) -> bool:
    """Blank the person's data on the lead and everywhere we keep a copy, in one transaction; the
    lead stays, counted, marked erased. False when it was erased already."""
    with transaction.atomic():
        # Waits for a transaction erasing it at the same time, then finds it erased.
        row = Lead.objects.select_for_update().filter(pk=lead.pk).values_list(*_LOCKED_COLUMNS).get()
        if row[-1] is not None:
            return False
        _erase_rows([row], actor=actor, event_data={})
    return True


def leads_erase(
    *, leads: QuerySet[Lead], limit: int, actor: User | None = None, event_data: dict[str, Any] | None = None
) -> list[int]:
    """Erase up to `limit` of these leads (in their order) that are not erased yet, in one
    transaction and a fixed number of statements whatever the limit: what `lead_erase` erases, one
    UPDATE per table for the whole batch. Rows another transaction holds are skipped, so two runs at
    once share the work instead of waiting. Returns the ids erased."""
    with transaction.atomic():
        rows = list(
            leads.filter(erased_at__isnull=True)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list(*_LOCKED_COLUMNS)[:limit]
        )
        if rows:
            _erase_rows(rows, actor=actor, event_data=event_data or {})
    return [row[0] for row in rows]


# What erasing reads of each lead, with the lock: the reasons to rewrite, the click to blank and
# whether it was erased already (last).
_LOCKED_COLUMNS = (
    "pk",
    "validity_reasons",
    "qualification_reasons",
    "tracked_click_id",
    "public_id",
    "created_at",
    "erased_at",
)


def _reason_codes_update(rows: list[tuple[Any, ...]], index: int, field: str) -> dict[str, Any]:
    """{field: CASE pk WHEN ... THEN <the reasons without quoted values> ... ELSE field END} for the
    rows whose reasons quote something, or {} when none does."""
    whens = []
    for row in rows:
        reasons = row[index] or []
        codes = [reason_code(str(reason)) for reason in reasons]
        if codes != reasons:
            whens.append(When(pk=row[0], then=Value(codes, output_field=JSONField())))
    return {field: Case(*whens, default=F(field), output_field=JSONField())} if whens else {}


class _EqualsAnyOf(Func):
    """`column = ANY(<array>)` (PostgreSQL): one parameter for all the ids, and the plan of `IN (...)`
    (an index scan per table), which a join to `unnest()` of the array does not always get."""

    arg_joiner = " = ANY("
    template = "%(expressions)s)"
    output_field = BooleanField()


class _InJsonArray(Func):
    """`column IN (SELECT value FROM json_each(<JSON array>))` (SQLite): one parameter for all the ids."""

    arg_joiner = " IN (SELECT value FROM json_each("
    template = "%(expressions)s))"
    output_field = BooleanField()


def one_of(field: str, ids: list[int]) -> Func:
    """A filter: `field` holds one of these ids, passed as one parameter, so a batch's dozen
    statements each bind one value instead of a thousand placeholders."""
    if connection.vendor == "postgresql":
        return _EqualsAnyOf(F(field), RawSQL("%s::bigint[]", (ids,)))
    return _InJsonArray(F(field), Value(json.dumps(ids)))


def _erase_rows(rows: list[tuple[Any, ...]], *, actor: User | None, event_data: dict[str, Any]) -> None:
    """Erase these locked leads (rows of _LOCKED_COLUMNS); the caller holds the transaction."""
    now = timezone.now()
    ids = [row[0] for row in rows]
    Lead.objects.filter(one_of("pk", ids)).update(
        **PERSONAL_FIELDS,
        **_reason_codes_update(rows, 1, "validity_reasons"),
        **_reason_codes_update(rows, 2, "qualification_reasons"),
        erased_at=now,
        updated_at=now,
    )
    # The consent certificates keep their text, times and digests: they still verify, and still prove
    # what the form showed, but no longer from which address (leads/services/consent.py).
    consent_certificates_erase(leads=Lead.objects.filter(one_of("pk", ids)))
    click_ids = [row[3] for row in rows if row[3]]
    if click_ids:
        Click.objects.filter(one_of("pk", click_ids)).update(ip=None, user_agent="", referrer="")
    LeadNote.objects.filter(one_of("lead_id", ids)).update(body="(erased)")
    CallLog.objects.filter(one_of("lead_id", ids)).exclude(notes="").update(notes="")
    LeadOutcome.objects.filter(one_of("lead_id", ids)).exclude(note="").update(note="")
    _scrub_data(LeadEvent.objects.filter(one_of("lead_id", ids), data__has_any_keys=[*_EVENT_TEXT_KEYS, "reasons"]))
    # What buyers wrote back may quote the lead.
    DeliveryAttempt.objects.filter(one_of("delivery__lead_id", ids) | one_of("notification__lead_id", ids)).update(
        response_excerpt="", error=""
    )
    Delivery.objects.filter(one_of("lead_id", ids)).exclude(reason="").update(reason=_ERASED)
    # Not yet sold: never will be, and no longer counted against a buyer's cap.
    Delivery.objects.filter(one_of("lead_id", ids), status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED, reason=f"not sent: {_ERASED}", finished_at=now
    )
    _scrub_data(PartnerNotification.objects.filter(one_of("lead_id", ids)))
    # A buyer's answer to an auction's post may quote the lead, as a delivery's reason may.
    AuctionBid.objects.filter(one_of("auction__lead_id", ids)).exclude(post_reason="").update(post_reason=_ERASED)
    # The supplier's ping keeps what its price was decided on, not the answers or the zip prefix.
    pings = list(SupplierPing.objects.filter(one_of("lead_id", ids)).only("pk", "fields"))
    for ping in pings:
        ping.fields = {name: value for name, value in ping.fields.items() if name not in _PING_PERSONAL_FIELDS}
    SupplierPing.objects.bulk_update(pings, ["fields"], batch_size=1000)
    # Processing too: a worker holding one loses its claim and its result is dropped.
    OutboxEntry.objects.filter(
        one_of("lead_id", ids),
        # Follow-ups that would send the person's data somewhere. Postbacks and supplier
        # notifications carry only ids, payouts and (blanked) reasons, and still go: they settle money.
        kind__in=[kind.name for kind in follow_up_kinds() if kind.sends_personal_data],
        status__in=(OutboxEntry.Status.PENDING, OutboxEntry.Status.PROCESSING, OutboxEntry.Status.FAILED),
    ).update(
        status=OutboxEntry.Status.DONE,
        claimed_until=None,
        last_error="not sent: the lead's personal data was erased",
    )
    _forget_stored_answers(rows, now)
    LeadEvent.objects.bulk_create(
        LeadEvent(lead_id=row[0], kind=LeadEvent.Kind.ERASED, actor=actor, data=event_data) for row in rows
    )
    leads_erased.send(sender=Lead, lead_ids=ids, actor=actor)


def _forget_stored_answers(rows: list[tuple[Any, ...]], now: datetime.datetime) -> None:
    """The API's answers kept for replays (a day) quote a lead's judgement, values and all: those naming
    an erased lead go. A repeat of its request then finds the (erased) lead by its key, as after a day.
    Only a lead captured within that day can be named in one, so older leads cost nothing here."""
    kept_since = now - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS + 1)
    public_ids = [str(row[4]) for row in rows if row[5] >= kept_since]
    if public_ids:
        naming = functools.reduce(operator.or_, (Q(response_body__icontains=public_id) for public_id in public_ids))
        IdempotencyRecord.objects.filter(naming).delete()

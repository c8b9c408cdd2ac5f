"""The outbox: follow-ups written with the lead, sent to Celery after commit, retried until done.

Each app registers a handler for its kinds of work when it is ready: leads for assignment, delivery,
postbacks and supplier notifications, nurture for enrollments, emails and webhook steps. A kind
without a handler waits, pending, until one is registered: nothing is dropped.
"""

import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import Lead, LeadEvent, OutboxEntry

logger = logging.getLogger(__name__)

Handler = Callable[[OutboxEntry], None]
_HANDLERS: dict[str, Handler] = {}
_QUIET_KINDS: set[str] = set()  # kinds whose handler writes its own timeline event
MAX_ATTEMPTS = 12  # for unexpected errors; handlers that raise RetryLater keep their own schedule
SWEEP_BATCH = 500
# A task sent this recently is presumed still queued: the sweeper leaves it alone, so a backlog
# longer than the beat interval is not sent again every minute.
SWEEP_GRACE = timedelta(minutes=2)
# Retries due sooner than this are sent with a countdown, so "retry in 5 s" means 5 s, not the
# next sweep; later ones wait for the sweeper (a long countdown would sit in a worker's memory).
SHORT_RETRY_SECONDS = 300
# After the broker refused a task, requests stop trying for this long (the sweeper sends later),
# so an outage costs one request a timeout instead of every request.
BROKER_PAUSE_SECONDS = 5.0
_broker_paused_until = 0.0


class RetryLater(Exception):
    """The handler could not finish now; try again after `delay` seconds (or the backoff)."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class GiveUp(Exception):
    """The handler's work failed for good (it recorded why); staff can retry it from the admin."""


def register_outbox_handler(kind: str, handler: Handler, *, timeline: bool = True) -> None:
    """`timeline=False` for handlers that write their own, more telling, timeline event."""
    _HANDLERS[kind] = handler
    if not timeline:
        _QUIET_KINDS.add(kind)


def handled_kinds() -> list[str]:
    return list(_HANDLERS)


def _backoff_seconds(attempts: int) -> float:
    # 10 s, 20 s, 40 s ... capped at 1 h, with jitter so retries of one outage do not stampede.
    return min(10 * 2 ** max(attempts - 1, 0), 3600) * random.uniform(0.8, 1.2)  # noqa: S311


def dispatch(entries: Iterable[tuple[int, str]], *, sweeping: bool = False, countdown: float | None = None) -> None:
    """Send a task per (entry id, kind), on its kind's queue. A broker that is down loses nothing:
    the entries not sent are marked so, and the sweeper sends them when it is back."""
    global _broker_paused_until
    from ..tasks import process_outbox_entry_task

    entries = list(entries)
    if not sweeping and time.monotonic() < _broker_paused_until:
        _not_queued([entry_id for entry_id, _ in entries])
        return
    for index, (entry_id, kind) in enumerate(entries):
        try:
            process_outbox_entry_task.apply_async(
                (entry_id,), queue=settings.OUTBOX_QUEUES.get(kind), countdown=countdown
            )
        except Exception:  # the broker's errors vary by transport; the row is the truth
            _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            logger.warning("Could not send outbox entry %s to the broker; the sweeper will retry", entry_id)
            _not_queued([pending_id for pending_id, _ in entries[index:]])
            return
    if sweeping:
        _broker_paused_until = 0.0  # the broker took tasks again


def _not_queued(entry_ids: list[int]) -> None:
    OutboxEntry.objects.filter(pk__in=entry_ids).update(dispatched_at=None)


def outbox_enqueue(*, lead: Lead, kinds: Iterable[str], payload: dict | None = None) -> list[OutboxEntry]:
    """Record follow-ups in the caller's transaction; tasks are sent only after it commits."""
    now = timezone.now()
    entries = OutboxEntry.objects.bulk_create(
        OutboxEntry(lead=lead, kind=kind, payload=payload or {}, dispatched_at=now if kind in _HANDLERS else None)
        for kind in kinds
    )
    due = [(entry.pk, entry.kind) for entry in entries if entry.kind in _HANDLERS]
    if due:
        transaction.on_commit(lambda: dispatch(due))
    return entries


def outbox_enqueue_many(items: Iterable[tuple[int, str, dict]]) -> list[OutboxEntry]:
    """Many follow-ups (lead id, kind, payload) in one insert, in the caller's transaction."""
    now = timezone.now()
    entries = OutboxEntry.objects.bulk_create(
        OutboxEntry(lead_id=lead_id, kind=kind, payload=payload, dispatched_at=now if kind in _HANDLERS else None)
        for lead_id, kind, payload in items
    )
    due = [(entry.pk, entry.kind) for entry in entries if entry.kind in _HANDLERS]
    if due:
        transaction.on_commit(lambda: dispatch(due))
    return entries


def _due(now) -> Q:
    """Waiting and due, or claimed by a worker whose claim has run out (it died or hung)."""
    return Q(status=OutboxEntry.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=OutboxEntry.Status.PROCESSING, claimed_until__lt=now
    )


def _claim(entry_id: int) -> OutboxEntry | None:
    now = timezone.now()
    claimed = OutboxEntry.objects.filter(_due(now), pk=entry_id).update(
        status=OutboxEntry.Status.PROCESSING,
        claimed_until=now + timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS),
        attempts=F("attempts") + 1,
        dispatched_at=None,  # its message has been taken off the queue
    )
    if not claimed:
        return None
    return OutboxEntry.objects.get(pk=entry_id)  # handlers load what they need


def outbox_process(*, entry_id: int) -> str:
    """Claim the entry (so no two workers run it), run its handler outside any transaction, record."""
    entry = _claim(entry_id)
    if entry is None:
        return "not due"
    # The claim is the token the result is recorded under: if it ran out and another worker took
    # the entry over, this worker's late result must not overwrite that worker's.
    ours = OutboxEntry.objects.filter(
        pk=entry.pk, status=OutboxEntry.Status.PROCESSING, claimed_until=entry.claimed_until
    )
    handler = _HANDLERS.get(entry.kind)
    if handler is None:
        ours.update(status=OutboxEntry.Status.PENDING, claimed_until=None)
        return "no handler"
    try:
        handler(entry)
    except Exception as error:
        if isinstance(error, RetryLater):
            delay, final = (error.delay if error.delay is not None else _backoff_seconds(entry.attempts)), False
        else:
            delay, final = _backoff_seconds(entry.attempts), isinstance(error, GiveUp) or entry.attempts >= MAX_ATTEMPTS
        due_at = timezone.now() + timedelta(seconds=delay)
        soon = not final and delay <= SHORT_RETRY_SECONDS
        recorded = ours.update(
            status=OutboxEntry.Status.FAILED if final else OutboxEntry.Status.PENDING,
            next_attempt_at=due_at,
            claimed_until=None,
            dispatched_at=due_at if soon else None,  # the sweeper leaves a scheduled task alone
            last_error=f"{type(error).__name__}: {error}"[:2000],
        )
        if soon and recorded:
            dispatch([(entry.pk, entry.kind)], countdown=delay + 0.5)
        if isinstance(error, RetryLater):
            # Only ids and numbers: a buyer's reason may quote the lead's contact details.
            logger.info("Outbox entry %s (%s) waits %.0f s", entry.pk, entry.kind, delay)
        else:
            logger.warning(
                "Outbox entry %s (%s) attempt %s failed: %s", entry.pk, entry.kind, entry.attempts, type(error).__name__
            )
        return "failed" if final else "retry"
    with transaction.atomic():
        if not ours.update(status=OutboxEntry.Status.DONE, done_at=timezone.now(), claimed_until=None, last_error=""):
            logger.warning("Outbox entry %s finished after its claim ran out; another worker owns it", entry.pk)
            return "claim lost"
        if entry.kind in _QUIET_KINDS:
            return "done"
        LeadEvent.objects.create(
            lead_id=entry.lead_id, kind=LeadEvent.Kind.FOLLOW_UP_DONE, data={"follow_up": entry.kind}
        )
    return "done"


def outbox_sweep(*, limit: int = SWEEP_BATCH) -> int:
    """Send every entry that is due, has a handler and has no task queued; returns how many."""
    now = timezone.now()
    not_queued = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - SWEEP_GRACE)
    sweepable = (Q(status=OutboxEntry.Status.PENDING, next_attempt_at__lte=now) & not_queued) | Q(
        status=OutboxEntry.Status.PROCESSING, claimed_until__lt=now
    )
    due = list(
        OutboxEntry.objects.filter(sweepable, kind__in=handled_kinds())
        .order_by("next_attempt_at")
        .values_list("pk", "kind")[:limit]
    )
    OutboxEntry.objects.filter(pk__in=[pk for pk, _ in due]).update(dispatched_at=now)
    dispatch(due, sweeping=True)
    return len(due)


def outbox_retry(*, entry_ids: list[int]) -> int:
    """Staff ask for failed or waiting follow-ups to run again now."""
    now = timezone.now()
    updated = (
        OutboxEntry.objects.filter(pk__in=entry_ids)
        .exclude(status=OutboxEntry.Status.DONE)
        # A row a worker is on now stays with that worker: a second one would race it.
        .exclude(status=OutboxEntry.Status.PROCESSING, claimed_until__gte=now)
        .update(
            status=OutboxEntry.Status.PENDING,
            next_attempt_at=timezone.now(),
            claimed_until=None,
            dispatched_at=timezone.now(),
        )
    )
    retryable = list(
        OutboxEntry.objects.filter(
            pk__in=entry_ids, status=OutboxEntry.Status.PENDING, kind__in=handled_kinds()
        ).values_list("pk", "kind")
    )
    transaction.on_commit(lambda: dispatch(retryable))
    return updated

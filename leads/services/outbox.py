"""The outbox: follow-ups written with the lead, sent to Celery after commit, retried until done.

Each app registers its kinds of follow-up when it is ready (`register_follow_up`): the name, the
Celery queue, which new leads need it, the handler of one entry and, if it has one, a batch handler.
A kind without a handler waits, pending, until one is registered: nothing is dropped.

A worker claims a batch of due rows in one statement (`FOR UPDATE SKIP LOCKED ... RETURNING` on
PostgreSQL), runs them outside any transaction, and records the results in bulk as they come in, so
a worker killed mid-batch leaves only that batch's unfinished rows to be run again when their claim
runs out. Work is at least once: handlers make a repeat harmless (a webhook keeps its id). A task
goes on with its queue's next due batches while it has time, claiming the next while the calls of
the one before are in flight (`outbox_drain(keep_going=True)`).
"""

import functools
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from leadcrm import config_cache
from leadcrm.bulk import (
    Statement,
    bulk_update_rows,
    deferred_statements,
    execute_soon,
    insert_rows,
    insert_values,
    last_rows,
    take_deferred,
)

from ..models import Lead, LeadEvent, OutboxEntry
from .publish_window import Batch, PublishWindow

logger = logging.getLogger(__name__)

Handler = Callable[[OutboxEntry], None]
# Runs claimed entries of one kind and yields each with None (done) or the error it ended with, as
# each finishes, or a Recording of several; it may yield None while it waits, so finished results
# are written (and a draining worker's next batch is prepared) meanwhile. One that sends to partners
# yields READY_TO_SEND when it has read what it needs and before it sends anything, and CALLS_ENDED
# once its last call has answered, before it writes the last results: a draining worker goes on with
# the next batch once the one before has no call in flight, so the sends a killed worker leaves
# unwritten are at most one batch's in flight and the answers of the one before not yet written.
# It starts no new work after `deadline` (time.monotonic()): those entries yield NotStarted.
BatchResult = tuple[OutboxEntry, Exception | None]


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


READY_TO_SEND = _Marker("READY_TO_SEND")
CALLS_ENDED = _Marker("CALLS_ENDED")


def sends_when_ready(handler: "BatchHandler") -> "BatchHandler":
    """Mark a batch handler that yields READY_TO_SEND before it sends anything (and CALLS_ENDED once
    its calls have answered): a draining worker may prepare such a batch while the one before it is
    in flight, and send it once the one before yielded CALLS_ENDED. Any other batch starts only once
    the one before has ended (an auction starts its pings in its first step)."""
    # A mark on the function object, read with getattr(): a callable's type has no such attribute.
    handler.sends_when_ready = True  # type: ignore[attr-defined]
    return handler


@dataclass
class Recording:
    """Finished work that a batch handler writes in the transaction where the outbox records these
    entries' ends, so both commit together: `write()` returns each entry's result. If it raises,
    nothing of it is written and every entry ends with the error (to go again)."""

    entries: list[OutboxEntry]
    write: Callable[[], list[BatchResult]]


BatchStep = BatchResult | Recording | _Marker | None
BatchHandler = Callable[[list[OutboxEntry], float], Iterator[BatchStep]]

MAX_ATTEMPTS = 12  # for unexpected errors; handlers that raise RetryLater keep their own schedule
# An entry whose worker stopped while running it (its claim ran out) is taken back alone, by the
# sweeper, so one that kills its worker takes no other entry down with it; taken back this many times
# and stopped again, it fails and waits for staff instead of stopping a worker every few minutes.
MAX_LOST_CLAIMS = 3
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
# Results are written at least this often while a batch runs: a killed worker loses no more.
RECORD_EVERY_SECONDS = 0.25
RECORD_EVERY_ROWS = 50
# Batches a draining task holds at once, besides one whose calls have all answered and that writes
# its last results: the next is claimed and prepared while the calls of the one before are in flight,
# so the calls seldom wait on the database; it sends once that one's calls have all answered, while
# their last results are written, so the buyer seldom waits on the database either. A worker killed
# mid-drain leaves these batches' unfinished rows, of which at most one batch's were in flight and
# another's last answers unwritten.
DRAIN_BATCHES_AT_ONCE = 2
_broker_paused_until = 0.0


class RetryLater(Exception):
    """The handler could not finish now; try again after `delay` seconds (or the backoff)."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class GiveUp(Exception):
    """The handler's work failed for good (it recorded why); staff can retry it from the admin."""


class NotStarted(Exception):
    """The batch ran out of time before this entry's turn: it is put back, its attempt not counted."""


@dataclass(frozen=True)
class FollowUpKind:
    """A kind of follow-up, registered by the app that does it."""

    name: str
    label: str
    handle: Handler
    handle_batch: BatchHandler | None = None
    queue: str | None = None  # Celery queue; None: the default one
    needed_by_new_lead: Callable[[Lead], bool] | None = None  # written with every captured lead that passes
    timeline: bool = True  # False for kinds that write their own, more telling, timeline event
    sends_personal_data: bool = False  # cancelled, unsent, when the person's data is erased
    # Entries one task takes at once (None: OUTBOX_BATCH_SIZE): a kind whose batch shares costs, such
    # as one SMTP connection, takes more.
    batch_size: int | None = None

    def run_batch(self, entries: list[OutboxEntry], deadline: float) -> Iterator[BatchStep]:
        if self.handle_batch is not None:
            yield from self.handle_batch(entries, deadline)
            return
        for entry in entries:
            if time.monotonic() > deadline:
                yield entry, NotStarted()
                continue
            try:
                self.handle(entry)
            except Exception as error:  # recorded on the entry; the batch goes on
                yield entry, error
            else:
                yield entry, None


_KINDS: dict[str, FollowUpKind] = {}


def register_follow_up(kind: FollowUpKind) -> None:
    _KINDS[kind.name] = kind


def register_outbox_handler(name: str, handler: Handler, *, timeline: bool = True) -> None:
    """Give a kind a plain handler (its batch handler, if any, is dropped); mostly for tests."""
    current = _KINDS.get(name)
    if current is None:
        _KINDS[name] = FollowUpKind(name=name, label=name.replace("_", " ").capitalize(), handle=handler)
    else:
        _KINDS[name] = replace(current, handle=handler, handle_batch=None, timeline=timeline)


def follow_up_kind(name: str) -> FollowUpKind | None:
    return _KINDS.get(name)


def follow_up_kinds() -> list[FollowUpKind]:
    return list(_KINDS.values())


def follow_up_label(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind else name


def handled_kinds() -> list[str]:
    return list(_KINDS)


def new_lead_follow_ups(lead: Lead) -> list[str]:
    """The kinds written with a newly captured lead, in registration order."""
    return [kind.name for kind in _KINDS.values() if kind.needed_by_new_lead and kind.needed_by_new_lead(lead)]


def _timeline(name: str) -> bool:
    kind = _KINDS.get(name)
    return kind is None or kind.timeline


def _queue_of(name: str) -> str | None:
    kind = _KINDS.get(name)
    return kind.queue if kind else None


def batch_size_of(name: str) -> int:
    kind = _KINDS.get(name)
    return (kind.batch_size if kind else None) or settings.OUTBOX_BATCH_SIZE


def _backoff_seconds(attempts: int) -> float:
    # 10 s, 20 s, 40 s ... capped at 1 h, with jitter so retries of one outage do not stampede.
    return float(min(10 * 2 ** max(attempts - 1, 0), 3600) * random.uniform(0.8, 1.2))  # noqa: S311


# --- Sending tasks to the broker --------------------------------------------------------------------


def dispatch(
    entries: Iterable[tuple[int, str]], *, sweeping: bool = False, countdown: float | None = None, alone: bool = False
) -> None:
    """Send tasks for (entry id, kind) pairs: one per queue and batch of ids, at most one per queue
    and OUTBOX_PUBLISH_WINDOW_SECONDS in a process for new entries (`publish_window`). A broker that is
    down loses nothing: the entries not sent are marked so, and the sweeper sends them when it is back.
    `alone`: one task per entry, which runs it by itself and may take it back from a stopped worker."""
    by_queue: dict[tuple[str | None, int], list[int]] = defaultdict(list)
    for entry_id, kind in entries:
        by_queue[(_queue_of(kind), batch_size_of(kind))].append(entry_id)
    batches = [(queue, size, ids) for (queue, size), ids in by_queue.items()]
    if not sweeping and time.monotonic() < _broker_paused_until:
        _not_queued([entry_id for _, _, ids in batches for entry_id in ids])
        return
    if sweeping or countdown is not None or alone or _runs_in_this_thread():
        _publish(batches, sweeping=sweeping, countdown=countdown, alone=alone)
    else:
        _publish_window.send(batches)


def _runs_in_this_thread() -> bool:
    # An eager task runs inside apply_async, in the caller's transaction and thread: never held.
    from ..tasks import process_outbox_batch_task

    return bool(process_outbox_batch_task.app.conf.task_always_eager)


def _publish(
    batches: list[Batch], *, sweeping: bool = False, countdown: float | None = None, alone: bool = False
) -> None:
    global _broker_paused_until
    from ..tasks import process_outbox_batch_task, process_outbox_entry_task

    tasks = [
        (queue, ids[start : start + step])
        for queue, size, ids in batches
        for step in [1 if alone else size]
        for start in range(0, len(ids), step)
    ]
    if not sweeping and time.monotonic() < _broker_paused_until:
        _not_queued([entry_id for _, ids in tasks for entry_id in ids])
        return
    for index, (queue, ids) in enumerate(tasks):
        # Celery takes None for both (the default queue, at once); its stub does not.
        options: dict[str, Any] = {"queue": queue, "countdown": countdown}
        try:
            if alone:
                process_outbox_entry_task.apply_async((ids[0],), **options)
            else:
                process_outbox_batch_task.apply_async((ids, queue), **options)
        except Exception:  # the broker's errors vary by transport; the row is the truth
            _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
            logger.warning("Could not send %s outbox entries to the broker; the sweeper will retry", len(ids))
            _not_queued([entry_id for _, pending in tasks[index:] for entry_id in pending])
            return
    if sweeping:
        _broker_paused_until = 0.0  # the broker took tasks again


_publish_window = PublishWindow(_publish, lambda: settings.OUTBOX_PUBLISH_WINDOW_SECONDS)


def _not_queued(entry_ids: list[int]) -> None:
    OutboxEntry.objects.filter(pk__in=entry_ids).update(dispatched_at=None)


def _dispatch_after_commit(due: list[tuple[int, str]]) -> None:
    """One dispatch per transaction: a lead's follow-ups written by several services (capture, a
    postback, a notification) go to the broker as one task per queue, not one per call."""
    if not due:
        return
    db = transaction.get_connection()
    if db.in_atomic_block:
        for _savepoints, callback, _robust in db.run_on_commit:
            pending = getattr(callback, "outbox_pending", None)
            if pending is not None and not pending.sent:
                pending.extend(due)
                return
    pending = _Pending(due)

    def send() -> None:
        pending.sent = True
        dispatch(pending)

    # Tests find what an on-commit callback will dispatch through this attribute of the function.
    send.outbox_pending = pending  # type: ignore[attr-defined]
    transaction.on_commit(send)


class _Pending(list[tuple[int, str]]):
    """The (entry id, kind) pairs a transaction will dispatch when it commits."""

    sent = False


def outbox_enqueue(
    *, lead: Lead, kinds: Iterable[str], payload: dict[str, Any] | None = None, before: Sequence[Statement] = ()
) -> list[int]:
    """Record follow-ups in the caller's transaction; tasks are sent only after it commits. Returns
    the entries' ids. `before`: other inserts of the transaction to send in the same round trip."""
    return outbox_enqueue_many([(lead.pk, kind, payload or {}) for kind in kinds], before=before)


def outbox_enqueue_many(
    items: Iterable[tuple[int, str, dict[str, Any]]], *, before: Sequence[Statement] = ()
) -> list[int]:
    """Many follow-ups (lead id, kind, payload) in one insert, in the caller's transaction. Returns
    the entries' ids."""
    now = timezone.now()
    rows = [(lead_id, kind, payload, now if kind in _KINDS else None) for lead_id, kind, payload in items]
    ids = insert_rows(OutboxEntry, ["lead_id", "kind", "payload", "dispatched_at"], rows, before=before)
    _dispatch_after_commit([(entry_id, row[1]) for entry_id, row in zip(ids, rows, strict=True) if row[1] in _KINDS])
    return ids


def outbox_enqueue_bulk(items: Sequence[tuple[int, str, dict[str, Any]]]) -> int:
    """`outbox_enqueue_many` for batches of thousands: one statement per few thousand rows and no
    entries built in Python; returns how many were written."""
    now = timezone.now()
    created = insert_values(
        OutboxEntry,
        [
            {
                "lead_id": lead_id,
                "kind": kind,
                "payload": payload,
                "dispatched_at": now if kind in _KINDS else None,
                "next_attempt_at": now,
                "created_at": now,
            }
            for lead_id, kind, payload in items
        ],
        returning=("id", "kind"),
    )
    _dispatch_after_commit([(entry_id, kind) for entry_id, kind in sorted(created) if kind in _KINDS])
    return len(created)


# --- Claiming and running ------------------------------------------------------------------------


def _claim(
    entry_ids: list[int], kinds: list[str], limit: int, *, take_back: bool = False
) -> tuple[list[OutboxEntry], datetime]:
    """Claim up to `limit` due rows in one statement: the given ids first, then (if kinds are given)
    other due rows of those kinds. Rows another worker holds are skipped, not waited for. A row whose
    worker stopped while running it (its claim ran out) is taken only with `take_back`, by the task
    that runs one entry alone, and counted as a lost claim."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS)
    if not entry_ids and not kinds:
        return [], until
    ops, quote = connection.ops, connection.ops.quote_name
    table = quote(OutboxEntry._meta.db_table)
    pending, processing = OutboxEntry.Status.PENDING.value, OutboxEntry.Status.PROCESSING.value
    moment = ops.adapt_datetimefield_value(now)
    ids_sql = f"id IN ({', '.join(['%s'] * len(entry_ids))})"
    wanted: list[str] = []
    wanted_params: list[int | str] = []
    if entry_ids:
        wanted.append(ids_sql)
        wanted_params += entry_ids
    if kinds:
        # Not one that has stopped a worker (retried by staff since): it runs alone, by its id.
        wanted.append(f"(kind IN ({', '.join(['%s'] * len(kinds))}) AND lost_claims = 0)")
        wanted_params += kinds
    order, order_params = "next_attempt_at", list[int]()
    if entry_ids and kinds:
        order, order_params = f"CASE WHEN {ids_sql} THEN 0 ELSE 1 END, next_attempt_at", entry_ids
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    columns = ", ".join(quote(field.column) for field in OutboxEntry._meta.concrete_fields)
    # Outside a transaction the UPDATE is one of its own, committed without waiting for the disk as
    # _commit_without_waiting_for_the_disk does (set_config(..., true) is its SET LOCAL as an
    # expression, run once a row is claimed): one round trip instead of four.
    alone = connection.vendor == "postgresql" and connection.get_autocommit()
    without_waiting = " AND set_config('synchronous_commit', 'off', true) = 'off'" if alone else ""
    # Only names and placeholders are spliced in; every value is a parameter.
    due, due_params = "(status = %s AND next_attempt_at <= %s)", list[str | int | None]([pending, moment])
    lost, lost_params = "", list[str]()
    if take_back:
        # One past the limit is the sweeper's to fail, whichever task (a duplicate, a redelivery) comes.
        stopped = "(status = %s AND claimed_until < %s AND lost_claims < %s)"
        due, due_params = f"({due} OR {stopped})", [*due_params, processing, moment, MAX_LOST_CLAIMS]
        # The right side reads the row as it was: a row still processing is one taken back.
        lost, lost_params = ", lost_claims = lost_claims + CASE WHEN status = %s THEN 1 ELSE 0 END", [processing]
    sql = (
        f"UPDATE {table} SET status = %s, claimed_until = %s, attempts = attempts + 1, dispatched_at = NULL{lost} "  # noqa: S608
        f"WHERE id IN (SELECT id FROM {table} WHERE ({' OR '.join(wanted)}) AND {due} "
        f"ORDER BY {order} LIMIT %s{lock}){without_waiting} RETURNING {columns}"
    )
    params = [
        processing,
        ops.adapt_datetimefield_value(until),
        *lost_params,
        *wanted_params,
        *due_params,
        *order_params,
        limit,
    ]
    if alone:
        claimed = list(OutboxEntry.objects.raw(sql, params))
    else:
        with transaction.atomic():
            _commit_without_waiting_for_the_disk()
            claimed = list(OutboxEntry.objects.raw(sql, params))
    # The claim is the token results are recorded under: if it ran out and another worker took an
    # entry over, this worker's late result must not overwrite that worker's.
    asked = set(entry_ids)
    return sorted(claimed, key=lambda entry: (entry.pk not in asked, entry.pk)), until


def _commit_without_waiting_for_the_disk() -> None:
    """This transaction's COMMIT returns before its WAL is flushed to disk (PostgreSQL's asynchronous
    commit, about a disk flush saved per batch). Only for what the outbox survives losing in a
    database crash, as it survives a worker killed before writing it: a claim, or a batch's results
    (its rows are run again under their ids: at least once). Never for a transaction after which
    something is sent (a delivery's routing): the webhook id must outlive the call. Any later
    ordinary commit flushes it too, so the database stays consistent. SET LOCAL holds for the whole
    transaction, so only an outermost one is changed (not a caller's that wraps a drain)."""
    if connection.vendor == "postgresql" and not connection.savepoint_ids:
        execute_soon("SET LOCAL synchronous_commit TO OFF", [])  # it may go with the next statement


_Soon = tuple[str | None, int]  # (queue, seconds): retries sent to the broker together


class _Results:
    """Results of a batch's entries, written in bulk every RECORD_EVERY_* and at the end."""

    def __init__(self, token: datetime):
        self.token = token
        self.buffer: list[BatchResult] = []
        self.flushed_at = time.monotonic()
        self.outcomes: dict[int, str] = {}

    def add(self, result: BatchResult | None) -> None:
        if result is not None:
            self.buffer.append(result)
        if len(self.buffer) >= RECORD_EVERY_ROWS or time.monotonic() - self.flushed_at >= RECORD_EVERY_SECONDS:
            self.flush()

    def record(self, recording: Recording) -> None:
        """The handler's writes and these entries' ends (with what is buffered) in one transaction."""
        buffered = self.buffer
        try:
            # What the handler's writes keep back (SET LOCAL, a rollup) goes with a later round trip.
            with transaction.atomic(), deferred_statements():
                _commit_without_waiting_for_the_disk()
                self.buffer = buffered + recording.write()
                self._write()
        except Exception as error:  # nothing of it was written: every entry goes again (same webhook id)
            self.buffer = buffered + [(entry, error) for entry in recording.entries]
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            with transaction.atomic(), deferred_statements():
                _commit_without_waiting_for_the_disk()
                self._write()
        self.flushed_at = time.monotonic()

    def _write(self) -> None:
        buffer, self.buffer, self.flushed_at = self.buffer, [], time.monotonic()
        if not buffer:
            return
        now = timezone.now()
        if all(error is None and not _timeline(entry.kind) for entry, error in buffer):
            self._flush_done(buffer, now)
            return
        soon: dict[_Soon, list[tuple[int, str]]] = defaultdict(list)
        # Each end is written under this batch's claim: a row whose claim ran out and that another
        # worker took over is left to that worker. A conditional UPDATE (row locks, then a re-check)
        # for the done ones; the others, rarer, are locked and read first.
        done_ids = [entry.pk for entry, error in buffer if error is None]
        # On PostgreSQL the "follow-up done" events go with the UPDATE that marks their entries done.
        timeline_with_finish = connection.vendor == "postgresql"
        ours = self._finish(done_ids, now, with_timeline=timeline_with_finish) if done_ids else set()
        ended = [entry.pk for entry, error in buffer if error is not None]
        if ended:
            ours |= set(
                OutboxEntry.objects.select_for_update()
                .filter(pk__in=ended, status=OutboxEntry.Status.PROCESSING, claimed_until=self.token)
                .values_list("pk", flat=True)
            )
        timeline = [
            (entry.lead_id, LeadEvent.Kind.FOLLOW_UP_DONE, {"follow_up": entry.kind})
            for entry, error in buffer
            if error is None and entry.pk in ours and ((kind := _KINDS.get(entry.kind)) is None or kind.timeline)
        ]
        if timeline and not timeline_with_finish:  # plain rows: a model instance each cost more than the insert
            insert_rows(LeadEvent, ["lead_id", "kind", "data"], timeline)
        changed = []
        for entry, error in buffer:
            if entry.pk not in ours:
                logger.warning("Outbox entry %s finished after its claim ran out; another worker owns it", entry.pk)
                self.outcomes[entry.pk] = "claim lost"
                continue
            if error is None:
                self.outcomes[entry.pk] = "done"
                continue
            self.outcomes[entry.pk] = self._settle(entry, error, now, soon)
            changed.append(entry)
        bulk_update_rows(
            changed,
            ["status", "attempts", "next_attempt_at", "claimed_until", "dispatched_at", "last_error", "lost_claims"],
        )
        for (_, delay), pairs in soon.items():
            transaction.on_commit(functools.partial(dispatch, pairs, countdown=delay + 0.5))

    def _finish(self, entry_ids: list[int], now: datetime, *, with_timeline: bool = False) -> set[int]:
        """Mark these entries done if this batch still holds them; returns those it did. `with_timeline`
        (PostgreSQL): the same statement writes the timeline's "follow-up done" event of each of them
        whose kind keeps one, saving the round trip of an INSERT of their own."""
        ops, quote = connection.ops, connection.ops.quote_name
        table = quote(OutboxEntry._meta.db_table)
        # Only names and placeholders are spliced in; every value is a parameter.
        sql = (
            f"UPDATE {table} SET status = %s, done_at = %s, claimed_until = NULL, last_error = '' "  # noqa: S608
            f"WHERE id IN ({', '.join(['%s'] * len(entry_ids))}) AND status = %s AND claimed_until = %s RETURNING id"
        )
        params = [
            OutboxEntry.Status.DONE.value,
            ops.adapt_datetimefield_value(now),
            *entry_ids,
            OutboxEntry.Status.PROCESSING.value,
            ops.adapt_datetimefield_value(self.token),
        ]
        if with_timeline:
            untold = [name for name, kind in _KINDS.items() if not kind.timeline]
            told = f" WHERE kind NOT IN ({', '.join(['%s'] * len(untold))})" if untold else ""
            event = {field.name: quote(field.column) for field in LeadEvent._meta.concrete_fields}
            # The event's columns: each follow-up's lead and kind, its moment, no actor (as insert_rows writes).
            sql = (
                f"WITH done AS ({sql}, lead_id, kind), timeline AS (INSERT INTO {quote(LeadEvent._meta.db_table)} "  # noqa: S608
                f"({event['lead']}, {event['kind']}, {event['data']}, {event['created_at']}, {event['actor']}) "
                f"SELECT lead_id, %s, jsonb_build_object('follow_up', kind), %s, NULL FROM done{told}) "
                "SELECT id FROM done"
            )
            params += [LeadEvent.Kind.FOLLOW_UP_DONE.value, ops.adapt_datetimefield_value(now), *untold]
        # What the transaction kept back so far (its SET LOCAL, the handler's rollups) goes first.
        return {row[0] for row in last_rows([*take_deferred(), (sql, params)])}

    def _flush_done(self, buffer: list[BatchResult], now: datetime) -> None:
        """Entries that all ended well and write no timeline: one conditional UPDATE marks those still
        under this claim."""
        ours = self._finish([entry.pk for entry, _ in buffer], now)
        for entry, _ in buffer:
            if entry.pk in ours:
                self.outcomes[entry.pk] = "done"
            else:
                logger.warning("Outbox entry %s finished after its claim ran out; another worker owns it", entry.pk)
                self.outcomes[entry.pk] = "claim lost"

    @staticmethod
    def _settle(
        entry: OutboxEntry, error: BaseException, now: datetime, soon: dict[_Soon, list[tuple[int, str]]]
    ) -> str:
        entry.claimed_until = None
        entry.lost_claims = 0  # it ran to an end: stops counted before were other entries' doing
        if isinstance(error, NotStarted):
            # Due now, left to the sweeper: a batch that ran out of time had a slow partner or a
            # backlog, and sending its rest straight back would only queue it behind itself.
            entry.status, entry.attempts, entry.next_attempt_at = OutboxEntry.Status.PENDING, entry.attempts - 1, now
            entry.dispatched_at = None
            return "not started"
        if isinstance(error, RetryLater):
            delay = error.delay if error.delay is not None else _backoff_seconds(entry.attempts)
            final = False
            # Only ids and numbers: a buyer's reason may quote the lead's contact details.
            logger.info("Outbox entry %s (%s) waits %.0f s", entry.pk, entry.kind, delay)
        else:
            delay = _backoff_seconds(entry.attempts)
            final = isinstance(error, GiveUp) or entry.attempts >= MAX_ATTEMPTS
            logger.warning(
                "Outbox entry %s (%s) attempt %s failed: %s", entry.pk, entry.kind, entry.attempts, type(error).__name__
            )
        due_at = now + timedelta(seconds=delay)
        is_soon = not final and delay <= SHORT_RETRY_SECONDS
        entry.status = OutboxEntry.Status.FAILED if final else OutboxEntry.Status.PENDING
        entry.next_attempt_at = due_at
        entry.dispatched_at = due_at if is_soon else None  # the sweeper leaves a scheduled task alone
        entry.last_error = f"{type(error).__name__}: {error}"[:2000]
        if is_soon:
            soon[(_queue_of(entry.kind), int(delay))].append((entry.pk, entry.kind))
        return "failed" if final else "retry"


class _Batch:
    """A claimed batch being run: its kinds' batch handlers, one step at a time, and its results."""

    def __init__(self, claimed: list[OutboxEntry], token: datetime, deadline: float):
        self.size = len(claimed)
        self.results = _Results(token)
        self.steps = self._run(claimed, token, deadline)
        self.waiting = False  # its last step found nothing to write: its work goes on elsewhere
        self.ready_to_send = False  # prepared; sends once the batches before it have no call in flight
        self.calls_ended = False  # its calls have all answered; it only writes what is left
        # Every kind in it prepares before it sends: it may be prepared while another batch runs.
        self.prepares_first = all(
            getattr(kind.handle_batch, "sends_when_ready", False)
            for kind in (_KINDS.get(name) for name in {entry.kind for entry in claimed})
            if kind is not None
        )

    def _run(self, claimed: list[OutboxEntry], token: datetime, deadline: float) -> Generator[BatchStep, None, None]:
        by_kind: dict[str, list[OutboxEntry]] = defaultdict(list)
        for entry in claimed:
            by_kind[entry.kind].append(entry)
        last = next(reversed(by_kind), None)
        for name, entries in by_kind.items():
            kind = _KINDS.get(name)
            if kind is None:
                OutboxEntry.objects.filter(
                    pk__in=[entry.pk for entry in entries], claimed_until=token, status=OutboxEntry.Status.PROCESSING
                ).update(status=OutboxEntry.Status.PENDING, claimed_until=None, attempts=F("attempts") - 1)
                self.results.outcomes.update(dict.fromkeys((entry.pk for entry in entries), "no handler"))
                continue
            for step in kind.run_batch(entries, deadline):
                # The batch's calls have ended only when its last kind's have: another kind may call next.
                if step is not CALLS_ENDED or name == last:
                    yield step

    def step(self) -> bool:
        """Run until the next result (or wait) and write what is due; False once the batch is over."""
        with config_cache.one_version():
            return self._step()

    def _step(self) -> bool:
        try:
            step = next(self.steps)
        except StopIteration:
            self.results.flush()
            return False
        self.ready_to_send = step is READY_TO_SEND
        self.calls_ended = self.calls_ended or step is CALLS_ENDED
        self.waiting = step is None or self.ready_to_send
        if isinstance(step, Recording):
            self.results.record(step)
        elif not isinstance(step, _Marker):
            self.results.add(step)
        return True

    def stop(self) -> None:
        """Start nothing more (calls under way end), and write what has finished."""
        self.steps.close()
        self.results.flush()


def outbox_drain(
    *,
    entry_ids: Iterable[int] = (),
    queue: str | None = None,
    top_up: bool = False,
    keep_going: bool = False,
    take_back: bool = False,
) -> dict[int, str]:
    """Claim the given entries (and, with `top_up`, other due ones of the queue's kinds, up to a
    batch), run each kind's batch, record. With `keep_going` (and `top_up`), go on with the queue's
    next due batch while there is one and time is left, claiming it while the calls of the one before
    are in flight (DRAIN_BATCHES_AT_ONCE). `take_back`: the given entries may be ones whose worker
    stopped while running them (see _claim). Returns {entry id: outcome}."""
    entry_ids = list(entry_ids)
    kinds = [kind.name for kind in _KINDS.values() if kind.queue == queue] if top_up else []
    limit = max(settings.OUTBOX_BATCH_SIZE, len(entry_ids))
    # The task's hard time limit is shorter than the claim; new work stops well before it.
    deadline = time.monotonic() + settings.OUTBOX_TASK_TIME_LIMIT * 0.5
    claimed, token = _claim(entry_ids, kinds, limit, take_back=take_back)
    running = [_Batch(claimed, token, deadline)]
    # A claim that found fewer rows than it asked for left nothing due behind it.
    more = keep_going and bool(kinds) and len(claimed) >= limit
    outcomes: dict[int, str] = {}
    try:
        while running:
            # Batches still to call go first: the next batch is ready to send when the calls in flight
            # end, and the last results of one whose calls have ended are written after.
            for batch in sorted(running, key=lambda batch: batch.calls_ended):
                before = running[: running.index(batch)]
                if before and not batch.prepares_first:
                    continue  # it starts once the batches before it have ended
                if batch.ready_to_send and not all(earlier.calls_ended for earlier in before):
                    continue  # it sends once the batches before it have no call in flight
                if not batch.step():
                    running.remove(batch)
                    outcomes.update(batch.results.outcomes)
            # A batch whose calls have all answered only writes its last results: it holds no call.
            idle = all((batch.waiting and batch.prepares_first) or batch.calls_ended for batch in running)
            calling = sum(1 for batch in running if not batch.calls_ended)
            if more and idle and calling < DRAIN_BATCHES_AT_ONCE and time.monotonic() < deadline:
                claimed, token = _claim([], kinds, settings.OUTBOX_BATCH_SIZE)
                more = len(claimed) >= settings.OUTBOX_BATCH_SIZE
                if claimed:
                    running.append(_Batch(claimed, token, deadline))
    finally:
        for batch in running:
            batch.stop()
            outcomes.update(batch.results.outcomes)
    return outcomes


def outbox_process(*, entry_id: int) -> str:
    """Run one entry now, alone, if it is due or its worker stopped while running it: "done", "retry",
    "failed", "not due", "claim lost"..."""
    return outbox_drain(entry_ids=[entry_id], take_back=True).get(entry_id, "not due")


def outbox_sweep(*, limit: int = SWEEP_BATCH) -> int:
    """Send every entry that is due, has a handler and has no task queued; returns how many. Those
    whose worker stopped while running them go one per task (`dispatch(alone=True)`), after the ones
    that stopped workers too often are failed (MAX_LOST_CLAIMS)."""
    now = timezone.now()
    stopped = Q(status=OutboxEntry.Status.PROCESSING, claimed_until__lt=now)
    _fail_the_ones_that_stop_their_workers(stopped)
    not_queued = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - SWEEP_GRACE)
    handled = handled_kinds()
    # Each query has its own limit: a backlog of due rows (a queue without a worker) must not starve
    # the few a stopped worker left, nor they it.
    alone, due = (
        list(
            OutboxEntry.objects.filter(condition, not_queued, kind__in=handled)
            .order_by("next_attempt_at")
            .values_list("pk", "kind")[:limit]
        )
        for condition in (
            # Those a stopped worker left, and those that stopped one that staff retried since.
            stopped | Q(status=OutboxEntry.Status.PENDING, next_attempt_at__lte=now, lost_claims__gt=0),
            Q(status=OutboxEntry.Status.PENDING, next_attempt_at__lte=now, lost_claims=0),
        )
    )
    OutboxEntry.objects.filter(pk__in=[pk for pk, _ in alone + due]).update(dispatched_at=now)
    dispatch(alone, sweeping=True, alone=True)
    dispatch(due, sweeping=True)
    return len(alone) + len(due)


def _fail_the_ones_that_stop_their_workers(stopped: Q) -> None:
    poison = OutboxEntry.objects.filter(stopped, lost_claims__gte=MAX_LOST_CLAIMS)
    failed = list(poison.values_list("pk", "kind", "lost_claims"))
    if not failed:
        return
    OutboxEntry.objects.filter(stopped, pk__in=[pk for pk, _, _ in failed]).update(
        status=OutboxEntry.Status.FAILED,
        claimed_until=None,
        dispatched_at=None,
        last_error=f"WorkerStopped: its worker stopped the last {MAX_LOST_CLAIMS + 1} times it ran (killed, "
        "out of memory or past its time limit); it runs again when staff retry it.",
    )
    for pk, kind, lost_claims in failed:
        logger.error("Outbox entry %s (%s) stopped its worker %s times in a row; failed", pk, kind, lost_claims + 1)


def outbox_retry(*, entry_ids: list[int]) -> int:
    """Staff ask for failed or waiting follow-ups to run again now. One that stopped its worker runs
    alone, and is failed again if it stops one again."""
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
        ).values_list("pk", "kind", "lost_claims")
    )
    transaction.on_commit(lambda: dispatch([(pk, kind) for pk, kind, lost in retryable if not lost]))
    transaction.on_commit(lambda: dispatch([(pk, kind) for pk, kind, lost in retryable if lost], alone=True))
    return updated

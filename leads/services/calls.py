"""Calls to partners' servers: one protocol for deliveries, postbacks, supplier notifications and
webhook steps.

A follow-up kind that calls a partner implements `PartnerCall`: `prepare` reads the database and
builds the request (or says there is nothing to send), `record` writes the attempt and the row's new
state once and ends the entry (done, `RetryLater` on the retry schedule, or `GiveUp`). Between them,
`partner_calls_batch` makes a batch's calls in parallel, outside any transaction, over pooled
connections, with at most PARTNER_CALLS_CONCURRENCY calls at once and PARTNER_CALLS_PER_DESTINATION
to one host (shared by the batches a worker has in flight); emails to buyers' inboxes go over one
SMTP connection per batch. A kind that can read and write a batch as a set (`BatchPartnerCall`)
prepares it in one go and records its answers in groups, so a batch costs a fixed number of queries
whatever its size. Answers are recorded in the transaction where the outbox ends their entries
(`Recording`), so both commit together.
"""

import contextlib
import functools
import os
import queue
import smtplib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import transaction
from django.utils import timezone

from leadcrm.email_skeleton import SkeletonEmail, Wire

from ..models import DeliveryAttempt, OutboxEntry
from .answers import Outcome, Verdict, excerpt, judge_answer, retry_delay
from .outbound_http import TransportError, UnsafeDestination, http_request
from .outbox import (
    CALLS_ENDED,
    READY_TO_SEND,
    RECORD_EVERY_SECONDS,
    BatchHandler,
    BatchResult,
    BatchStep,
    GiveUp,
    NotStarted,
    Recording,
    RetryLater,
    sends_when_ready,
)


@dataclass
class CallResult:
    verdict: Verdict
    status_code: int | None = None
    latency_ms: int = 0
    response: str = ""
    error: str = ""


@dataclass
class PartnerRequest:
    """One call to make, built from the database before a batch sends anything."""

    url: str = ""
    method: str = "POST"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10
    follow_redirects: bool = False
    judge: dict[str, str] | None = None
    rejection_is_final: bool = True  # a tracker or a supplier has no "next buyer"
    email: EmailMessage | None = None  # a buyer's inbox instead of a URL
    refusal: str = ""  # a call we will not make (no signing secret, say): final, with the reason

    @property
    def destination(self) -> str:
        """What the per-destination limit counts: the host and port, or the mail server."""
        if self.email is not None:
            return "smtp"
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or ''}"


def refused(reason: str) -> CallResult:
    """A call we would not make (no signing secret, say): final, with the reason."""
    return CallResult(Verdict(Outcome.FAILED, reason=reason[:500]), error=reason)


def call_partner(
    method: str, url: str, *, judge: dict[str, str] | None = None, rejection_is_final: bool = True, **request: Any
) -> CallResult:
    """Make the request and judge its answer. A tracker or a supplier has no "next buyer", so for
    them a rejection (a 4xx) is final; a buyer's rejection moves the lead on instead."""
    try:
        answer = http_request(method, url, **request)
    except UnsafeDestination as error:
        return refused(str(error))
    except TransportError as error:
        return CallResult(Verdict(Outcome.RETRY, reason=str(error)[:500]), error=str(error))
    verdict = judge_answer(answer, **(judge or {}))
    if rejection_is_final and verdict.outcome == Outcome.REJECTED:
        verdict.outcome = Outcome.FAILED
    return CallResult(verdict, answer.status, answer.latency_ms, excerpt(answer))


def smtp_error_is_permanent(error: BaseException) -> bool:
    """The recipient's address is bad for good (5xx). A refused sender or login is our
    configuration, never the recipient's bounce: it is temporary, to be fixed and retried."""
    if isinstance(error, smtplib.SMTPSenderRefused | smtplib.SMTPAuthenticationError):
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


class Mailer:
    """One SMTP connection for a batch, opened on first use, re-opened after the server drops it."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.lock = threading.Lock()

    def send(self, message: EmailMessage, wire: Wire | None = None) -> None:
        """`wire`: the message's bytes (`SkeletonEmail.wire()`), if the caller made them already. A
        caller sending from a thread of its own makes them on its own thread: everything this one does
        lies on the path of every send."""
        with self.lock:
            if self.connection is None:
                self.connection = get_connection()
                self.connection.open()
            message.connection = self.connection
            try:
                if wire is None and isinstance(message, SkeletonEmail):
                    wire = message.wire()
                smtp = self.connection.connection if isinstance(self.connection, SMTPBackend) else None
                if wire is not None and smtp is not None:
                    # The bytes Django would send, made from the shape's skeleton (leadcrm/email_skeleton.py).
                    smtp.sendmail(*wire)
                else:
                    message.send()
            except smtplib.SMTPServerDisconnected:
                self._drop()
                raise

    def _drop(self) -> None:
        with contextlib.suppress(Exception):  # already gone: nothing to close
            self.connection.close()
        self.connection = None

    def close(self) -> None:
        with self.lock:
            if self.connection is not None:
                self._drop()


def _send_email(message: EmailMessage, mailer: Mailer) -> CallResult:
    started = time.monotonic()
    try:
        mailer.send(message)
    except (smtplib.SMTPException, OSError) as error:
        reason = f"{type(error).__name__}: {error}"[:500]
        outcome = Outcome.FAILED if smtp_error_is_permanent(error) else Outcome.RETRY
        return CallResult(Verdict(outcome, reason=reason), error=reason)
    return CallResult(Verdict(Outcome.ACCEPTED), latency_ms=int((time.monotonic() - started) * 1000))


def perform(request: PartnerRequest, mailer: Mailer | None = None) -> CallResult:
    """Make one prepared call (network I/O: never inside a transaction)."""
    if request.refusal:
        return refused(request.refusal)
    if request.email is not None:
        own = mailer is None
        mailer = mailer or Mailer()
        try:
            return _send_email(request.email, mailer)
        finally:
            if own:
                mailer.close()
    return call_partner(
        request.method,
        request.url,
        judge=request.judge,
        rejection_is_final=request.rejection_is_final,
        body=request.body,
        headers=request.headers,
        timeout=request.timeout,
        follow_redirects=request.follow_redirects,
    )


def settle(verdict: Verdict, attempts: int) -> tuple[str, float | None]:
    """(outcome, seconds until the retry) after `attempts` tries; past the schedule a retry fails."""
    if verdict.outcome != Outcome.RETRY:
        return verdict.outcome, None
    delay = retry_delay(attempts=attempts, retry_after=verdict.retry_after)
    if delay is None:
        verdict.reason = f"gave up after {attempts} attempts; last: {verdict.reason}"[:500]
        return Outcome.FAILED, None
    return Outcome.RETRY, delay


def end_entry(outcome: str, delay: float | None, reason: str) -> None:
    """End an outbox entry after its call: done (return), later (RetryLater) or for good (GiveUp)."""
    if outcome == Outcome.RETRY:
        raise RetryLater(reason or "the partner did not answer", delay=delay)
    if outcome == Outcome.FAILED:
        raise GiveUp(reason or "the call failed")


# The attempt log's columns of one call, in the order of `attempt_values`.
ATTEMPT_COLUMNS = ["url", "status_code", "latency_ms", "outcome", "error", "response_excerpt"]


class Answered(Protocol):
    """What the attempt log keeps of a call's result (a CallResult, or a delivery's SentRequest)."""

    status_code: int | None
    latency_ms: int
    response: str
    error: str


def attempt_values(*, url: str, result: Answered, outcome: str) -> tuple[Any, ...]:
    """The attempt log's values of one call, as plain values (a batch writes hundreds of rows): the URL
    and the error cut to their columns."""
    return (url[:2000], result.status_code, result.latency_ms, outcome, result.error[:500], result.response)


def attempt_row(*, url: str, result: CallResult, outcome: str, **row: Any) -> DeliveryAttempt:
    """The attempt log's row of one call (`row`: the delivery, postback or notification it was for)."""
    values = attempt_values(url=url, result=result, outcome=outcome)
    return DeliveryAttempt(**row, **dict(zip(ATTEMPT_COLUMNS, values, strict=True)))


def record_call(row: Any, *, url: str, result: CallResult, attempt_of: str) -> tuple[str, float | None]:
    """Record a postback's or notification's attempt on its row (both share sent/failed/pending)."""
    attempts = row.attempts + 1
    outcome, delay = settle(result.verdict, attempts)
    statuses = type(row).Status
    status = {Outcome.ACCEPTED: statuses.SENT, Outcome.FAILED: statuses.FAILED}.get(outcome, statuses.PENDING)
    with transaction.atomic():
        type(row).objects.filter(pk=row.pk).update(
            status=status,
            attempts=attempts,
            last_status_code=result.status_code,
            reason=result.verdict.reason[:500],
            finished_at=None if status == statuses.PENDING else timezone.now(),
        )
        DeliveryAttempt.objects.bulk_create([attempt_row(url=url, result=result, outcome=outcome, **{attempt_of: row})])
    row.status, row.attempts, row.reason = status, attempts, result.verdict.reason
    return outcome, delay


class PartnerCall(Protocol):
    """A follow-up kind whose work is one call to a partner's server."""

    def prepare(self, entry: OutboxEntry) -> tuple[Any, PartnerRequest] | None:
        """(what the call is for, the request), or None when there is nothing to send. May raise
        RetryLater or GiveUp to end the entry without a call."""

    def record(self, entry: OutboxEntry, subject: Any, request: PartnerRequest, result: CallResult) -> None:
        """Record the attempt and the new state once; return when done, or raise RetryLater/GiveUp."""


def run_partner_call(call: PartnerCall, entry: OutboxEntry) -> None:
    """One entry, as a plain outbox handler (the admin's and tests' path)."""
    prepared = call.prepare(entry)
    if prepared is not None:
        subject, request = prepared
        call.record(entry, subject, request, perform(request))


class BatchPartnerCall(PartnerCall, Protocol):
    """A partner call that prepares and records a batch as a set (a few queries, not a few per entry)."""

    def prepare_batch(self, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, Any]]:
        """For each entry, what `prepare` returns, or the exception it would raise."""

    def record_batch(self, finished: list[tuple[OutboxEntry, Any, PartnerRequest, CallResult]]) -> list[BatchResult]:
        """Record finished calls at once; for each entry None (done) or the exception that ends it."""

    # Optional: still_to_send(subjects) -> the subjects still to be sent, asked once a prepared batch's
    # turn to send has come (it may have waited for the batch before).


def _prepare_all(call: PartnerCall, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, Any]]:
    prepare_batch = getattr(call, "prepare_batch", None)
    if prepare_batch is not None:
        try:
            return list(prepare_batch(entries))
        except Exception as error:  # the database failed us: every entry ends with it, to be retried
            return [(entry, error) for entry in entries]
    prepared: list[tuple[OutboxEntry, Any]] = []
    for entry in entries:
        try:
            prepared.append((entry, call.prepare(entry)))
        except Exception as error:  # the entry ends with it; the batch goes on
            prepared.append((entry, error))
    return prepared


def _record_all(
    call: PartnerCall, finished: list[tuple[OutboxEntry, Any, PartnerRequest, CallResult]]
) -> list[BatchResult]:
    """Record finished calls (inside the outbox's transaction for these entries); a failing
    `record_batch` raises, so nothing of it is written."""
    record_batch = getattr(call, "record_batch", None)
    if record_batch is not None:
        return list(record_batch(finished))
    results: list[BatchResult] = []
    for entry, subject, request, result in finished:
        try:
            call.record(entry, subject, request, result)  # ends the entry by raising RetryLater or GiveUp
        except Exception as error:
            results.append((entry, error))
        else:
            results.append((entry, None))
    return results


def partner_calls_batch(call: PartnerCall) -> BatchHandler:
    """The batch handler of a PartnerCall kind: prepare all, call in parallel, record as they end (in
    groups: once all have answered, or every RECORD_EVERY_SECONDS before)."""
    # What a draining worker's batches are sending, or have sent without writing the answer yet: the
    # next batch may send while the last answers of the one before are written, never the same again.
    unwritten: Counter[Any] = Counter()

    def run(entries: list[OutboxEntry], deadline: float) -> Iterator[BatchStep]:
        prepared = []
        for entry, ready in _prepare_all(call, entries):
            if isinstance(ready, Exception):
                yield entry, ready
            elif ready is None:
                yield entry, None
            else:
                prepared.append((entry, *ready))
        if not prepared:
            return
        yield READY_TO_SEND
        # A batch prepared while the one before was calling waited for it: what it checked (the lead
        # not erased or returned, the buyer active, the send still pending) may have changed since.
        recheck = getattr(call, "still_to_send", None)
        if recheck is not None:
            still = recheck([subject for _, subject, _ in prepared]) - unwritten.keys()
            for entry, subject, _ in prepared:
                if subject not in still:
                    yield entry, RetryLater("changed while waiting to be sent; checked again", delay=0)
            prepared = [(entry, subject, request) for entry, subject, request in prepared if subject in still]
            # Two entries of one send in this batch (a lead's "route to next buyer" pressed twice): one
            # sends it; the other goes again once its answer is written, and finds it settled or pending.
            unique, sending = [], set()
            for entry, subject, request in prepared:
                if subject in sending:
                    yield entry, RetryLater("another entry of this batch sends it; checked again after", delay=0)
                else:
                    sending.add(subject)
                    unique.append((entry, subject, request))
            prepared = unique
        subjects = [subject for _, subject, _ in prepared] if recheck is not None else []
        unwritten.update(subjects)
        try:
            yield from _call_all(call, prepared, deadline)
        finally:
            unwritten.subtract(subjects)
            for subject in subjects:
                if unwritten[subject] <= 0:
                    del unwritten[subject]

    return sends_when_ready(run)


def _call_all(
    call: PartnerCall, prepared: list[tuple[OutboxEntry, Any, PartnerRequest]], deadline: float
) -> Iterator[BatchStep]:
    mailer = Mailer()

    def attempt(request: PartnerRequest) -> CallResult | None:
        if time.monotonic() > deadline:
            return None  # the batch's time is up: put back, not attempted
        return perform(request, mailer)

    answered: list[tuple[OutboxEntry, Any, PartnerRequest, CallResult]] = []
    recorded_at = time.monotonic()
    # Calls report their end on a queue: waiting on the set of futures again after each end would
    # cost the batch's size in Python work per call.
    ended: queue.SimpleQueue[Future[CallResult | None]] = queue.SimpleQueue()
    futures: dict[Future[CallResult | None], tuple[OutboxEntry, Any, PartnerRequest]] = {}
    for entry, subject, request in prepared:
        future = _lane(request.destination).submit(functools.partial(attempt, request))
        futures[future] = (entry, subject, request)
        future.add_done_callback(ended.put)
    left = len(futures)
    try:
        yield None  # the calls are under way: the drain may take its next batch meanwhile
        while left:
            finished = []
            with contextlib.suppress(queue.Empty):
                finished.append(ended.get(timeout=RECORD_EVERY_SECONDS))
                while True:
                    finished.append(ended.get_nowait())
            left -= len(finished)
            if not left:
                yield CALLS_ENDED  # the drain's next batch may send while these last answers are written
            for future in finished:
                entry, subject, request = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # a fault of ours, not the partner's answer
                    yield entry, error
                    continue
                if result is None:
                    yield entry, NotStarted()
                else:
                    answered.append((entry, subject, request, result))
            # Written when the batch's calls have all answered, or every RECORD_EVERY_SECONDS before: each
            # write is a transaction of a few round trips on the thread that also prepares the next batch.
            due = time.monotonic() - recorded_at >= RECORD_EVERY_SECONDS
            if answered and (due or not left):
                yield Recording([entry for entry, *_ in answered], functools.partial(_record_all, call, answered))
                answered, recorded_at = [], time.monotonic()
            else:
                yield None  # still waiting: what has finished is written (or the next batch taken) meanwhile
    finally:
        # Stopped early (the worker is shutting down): start no more calls, let those under way end.
        under_way = [future for future in futures if not future.cancel()]
        wait(under_way)
        mailer.close()


class _Lane:
    """The calls to one destination: at most PARTNER_CALLS_PER_DESTINATION at once on the process's call
    threads, shared by the batches a worker has in flight. The others wait in the lane, not on a thread:
    a thread whose call ends goes on with the lane's next, so no thread sits blocked on a busy buyer
    while another destination's calls queue behind it, and none is woken only to wait again (16 threads
    taking turns at 4 connections cost about a fifth more CPU a call)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self.lock = threading.Lock()

    def submit(self, work: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            if self.running >= self.limit:
                self.waiting.append((future, work))
                return future
            self.running += 1
        try:
            _call_threads().submit(self._run, future, work)
        except BaseException:  # no thread to run it (the interpreter is exiting): the slot is not taken
            with self.lock:
                self.running -= 1
            raise
        return future

    def _run(self, future: Future[Any], work: Callable[[], Any]) -> None:
        while True:
            if future.set_running_or_notify_cancel():  # False: cancelled while it waited
                try:
                    result = work()
                except BaseException as error:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            with self.lock:
                if not self.waiting:
                    self.running -= 1
                    return
                future, work = self.waiting.popleft()


_lanes: dict[tuple[int, str, int], _Lane] = {}  # (process id, destination, limit): its lane
_lanes_lock = threading.Lock()


def _lane(destination: str) -> _Lane:
    key = (os.getpid(), destination, settings.PARTNER_CALLS_PER_DESTINATION)
    with _lanes_lock:
        lane = _lanes.get(key)
        if lane is None:
            lane = _lanes[key] = _Lane(settings.PARTNER_CALLS_PER_DESTINATION)
        return lane


_threads: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, size, pool)
_threads_lock = threading.Lock()


def _call_threads() -> ThreadPoolExecutor:
    """The process's PARTNER_CALLS_CONCURRENCY threads for calls, started once: starting them for
    every batch cost more than a batch's calls to a fast buyer. A forked child starts its own."""
    global _threads
    size = settings.PARTNER_CALLS_CONCURRENCY
    with _threads_lock:
        if _threads is None or _threads[:2] != (os.getpid(), size):
            _threads = (os.getpid(), size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="partner-call"))
        return _threads[2]

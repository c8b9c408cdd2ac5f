"""One call to a partner's server: make it under our safety rules, judge the answer, decide
between done, retry later and give up, and record the attempt on the row it was for."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ..models import DeliveryAttempt
from .answers import Outcome, Verdict, excerpt, judge_answer, retry_delay
from .outbound_http import TransportError, UnsafeDestination, http_request


@dataclass
class CallResult:
    verdict: Verdict
    status_code: int | None = None
    latency_ms: int = 0
    response: str = ""
    error: str = ""


def refused(reason: str) -> CallResult:
    """A call we would not make (no signing secret, say): final, with the reason."""
    return CallResult(Verdict(Outcome.FAILED, reason=reason[:500]), error=reason)


def call_partner(method: str, url: str, *, judge: dict | None = None, rejection_is_final: bool = True, **request):
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


def settle(verdict: Verdict, attempts: int) -> tuple[str, float | None]:
    """(outcome, seconds until the retry) after `attempts` tries; past the schedule a retry fails."""
    if verdict.outcome != Outcome.RETRY:
        return verdict.outcome, None
    delay = retry_delay(attempts=attempts, retry_after=verdict.retry_after)
    if delay is None:
        verdict.reason = f"gave up after {attempts} attempts; last: {verdict.reason}"[:500]
        return Outcome.FAILED, None
    return Outcome.RETRY, delay


def record_call(row, *, url: str, result: CallResult, attempt_of: str) -> tuple[str, float | None]:
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
        DeliveryAttempt.objects.create(
            **{attempt_of: row},
            url=url[:2000],
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            outcome=outcome,
            error=result.error[:500],
            response_excerpt=result.response,
        )
    row.status, row.attempts, row.reason = status, attempts, result.verdict.reason
    return outcome, delay

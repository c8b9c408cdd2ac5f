"""How we judge a partner server's answer, and when we try again."""

import json
import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from django.utils import timezone

from .outbound_http import HttpAnswer

# Retries after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 24 h (about a day and a half).
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 86400)
MAX_RETRY_AFTER = 86400
EXCERPT_CHARS = 2000


class Outcome:
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the buyer said no to this lead: try the next buyer
    RETRY = "retry"  # no answer, or a temporary one: same buyer, later
    FAILED = "failed"  # final: fix the destination, then redeliver


@dataclass
class Verdict:
    outcome: str
    reason: str = ""
    reference: str = ""
    retry_after: float | None = None
    disable_destination: bool = False


def json_path(data: Any, path: str) -> Any:
    """`result.accepted` or `errors.0.message`; None when any step is missing."""
    for step in path.split("."):
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return None
    return data


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _retry_after(answer: HttpAnswer) -> float | None:
    value = answer.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the obsolete asctime form carries no zone; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(max((when - timezone.now()).total_seconds(), 1.0), MAX_RETRY_AFTER)


def judge_answer(
    answer: HttpAnswer,
    *,
    accept_path: str = "",
    accept_value: str = "",
    reason_path: str = "",
    reference_path: str = "",
) -> Verdict:
    status = answer.status
    try:
        data = json.loads(answer.body) if answer.body else None
    except ValueError:
        data = None
    reason = _as_text(json_path(data, reason_path)) if reason_path and data is not None else ""
    if 200 <= status < 300:
        reference = _as_text(json_path(data, reference_path)) if reference_path and data is not None else ""
        if accept_path:
            found = json_path(data, accept_path) if data is not None else None
            if found is None or (accept_value and _as_text(found).lower() != accept_value.lower()):
                why = reason or f"{accept_path} is {_as_text(found) or 'missing'}, not {accept_value or 'set'}"
                return Verdict(Outcome.REJECTED, reason=why[:500], reference=reference[:200])
        return Verdict(Outcome.ACCEPTED, reference=reference[:200])
    if status in (408, 429) or status >= 500:
        return Verdict(Outcome.RETRY, reason=f"HTTP {status}", retry_after=_retry_after(answer))
    if status == 410:
        return Verdict(Outcome.FAILED, reason="HTTP 410 Gone: the destination is disabled", disable_destination=True)
    if 300 <= status < 400:
        return Verdict(
            Outcome.FAILED, reason=f"HTTP {status} redirect to {answer.headers.get('location', '?')[:200]} not followed"
        )
    if status in (401, 403, 404, 405):
        return Verdict(Outcome.FAILED, reason=f"HTTP {status}: check the destination's URL and credentials")
    return Verdict(Outcome.REJECTED, reason=(reason or f"HTTP {status}: {answer.text[:200]}")[:500])


def retry_delay(*, attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next try after `attempts` tries, or None when it is time to give up."""
    if attempts > len(RETRY_DELAYS):
        return None
    if retry_after is not None:
        return max(retry_after, 1.0)
    base = RETRY_DELAYS[attempts - 1]
    return base * random.uniform(0.9, 1.1)  # noqa: S311  jitter, so one outage's retries do not stampede


def excerpt(answer: HttpAnswer) -> str:
    return answer.text[:EXCERPT_CHARS]

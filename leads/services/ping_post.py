"""Ping/post buyers: what a ping tells a buyer, the signed ping itself, and how its answer is read.

A ping holds only the fields its destination ticked among PING_FIELDS, each computed here from the
lead so that none identifies anyone: the email, phone, names, company, address, IP, user agent,
message and click ids never enter a ping, whatever the destination's settings say.
"""

import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from campaigns.models import MONEY

from ..models import DeliveryDestination, Lead, WebhookSecret
from .answers import json_path
from .delivery import _auth_header  # the destination's credentials, sent as its deliveries send them
from .outbound_http import TransportError, UnsafeDestination, http_request
from .signing import signature_headers

ZIP_PREFIX_LENGTH = 3
SCORE_BAND_WIDTH = 20
REGION_ANSWER_KEYS = ("region", "state")  # leadcrm keeps no region of its own: the quiz's answer to it


def score_band(score: int) -> str:
    """0-19, 20-39, 40-59, 60-79 or 80-100: enough to price a lead, too coarse to single it out."""
    low = min(score // SCORE_BAND_WIDTH * SCORE_BAND_WIDTH, 100 - SCORE_BAND_WIDTH)
    high = 100 if low == 100 - SCORE_BAND_WIDTH else low + SCORE_BAND_WIDTH - 1
    return f"{low}-{high}"


def _answer_text(value: Any) -> Any:
    return [str(item) for item in value] if isinstance(value, list) else str(value)


def ping_fields(lead: Lead, destination: DeliveryDestination, *, ping_id: str) -> dict[str, Any]:
    """The ping's body: the chosen non-identifying fields, the ping id and the currency of the bid."""
    chosen = set(destination.ping_fields)
    fields: dict[str, Any] = {"ping_id": ping_id, "currency": lead.offer.currency}
    if "country" in chosen:
        fields["country"] = lead.country
    if "region" in chosen:
        region = next((lead.answers[key] for key in REGION_ANSWER_KEYS if key in lead.answers), "")
        fields["region"] = _answer_text(region)
    if "zip_prefix" in chosen:
        fields["zip_prefix"] = lead.zip_code.replace(" ", "").upper()[:ZIP_PREFIX_LENGTH]
    if "lead_type" in chosen:
        fields["lead_type"] = lead.lead_type
    if "lead_age" in chosen:
        fields["lead_age"] = max(int((timezone.now() - lead.created_at).total_seconds()), 0)
    if "score_band" in chosen:
        fields["score_band"] = score_band(lead.score)
    if "offer" in chosen:
        fields["offer"] = lead.offer.name
    if "answers" in chosen:
        fields["answers"] = {
            key: _answer_text(lead.answers[key]) for key in destination.ping_answer_keys if key in lead.answers
        }
    return fields


@dataclass
class Ping:
    """One ping to make, built from the database before any is sent."""

    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float
    bid_path: str
    bid_id_path: str
    reason_path: str


@dataclass
class PingAnswer:
    outcome: str  # AuctionBid.Outcome: bid, rejected, timeout or error
    amount: Decimal | None = None
    bid_id: str = ""
    latency_ms: int = 0
    status_code: int | None = None
    reason: str = ""


def ping_request(*, lead: Lead, destination: DeliveryDestination, ping_id: str, secrets: list[WebhookSecret]) -> Ping:
    """The signed ping (Standard Webhooks headers, as deliveries are signed; `ping_id` is its id)."""
    body = json.dumps(
        ping_fields(lead, destination, ping_id=ping_id), cls=DjangoJSONEncoder, separators=(",", ":")
    ).encode()
    headers = {
        **destination.headers,
        "Content-Type": "application/json",
        **(_auth_header(destination) if destination.auth != DeliveryDestination.Auth.NONE else {}),
        **signature_headers(secrets=secrets, msg_id=ping_id, body=body, timestamp=int(time.time())),
    }
    return Ping(
        url=destination.ping_url,
        body=body,
        headers=headers,
        timeout=destination.ping_timeout_ms / 1000,
        bid_path=destination.bid_json_path,
        bid_id_path=destination.bid_id_json_path,
        reason_path=destination.reason_json_path,
    )


# The largest amount a money column holds (campaigns.models.MONEY: 14 digits, 2 after the point).
_LARGEST_AMOUNT = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.01")


def _amount(value: Any) -> Decimal | None:
    """A bid as money: a number or a numeric text that fits the money columns; None otherwise (a bid
    that could not be stored would fail the auction's every run, and with it the lead's sale)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = Decimal(str(value).strip())
        if not amount.is_finite():
            return None
        amount = amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    return amount if abs(amount) <= _LARGEST_AMOUNT else None


def read_ping_answer(status: int, body: bytes, ping: Ping) -> PingAnswer:
    """A 2xx JSON answer with a positive bid is a bid; a 2xx without one, or a 4xx, declines; anything
    else (malformed JSON, a bid that is not a number, a 5xx or a redirect) is an error."""
    if 400 <= status < 500:
        return PingAnswer("rejected", status_code=status, reason=f"HTTP {status}")
    if not 200 <= status < 300:
        return PingAnswer("error", status_code=status, reason=f"HTTP {status}")
    try:
        data = json.loads(body)
    except ValueError:
        excerpt = body[:100].decode(errors="replace")
        return PingAnswer("error", status_code=status, reason=f"the answer is not JSON: {excerpt!r}")
    raw_bid = json_path(data, ping.bid_path)
    reason = json_path(data, ping.reason_path) if ping.reason_path else None
    if raw_bid in (None, "", 0, False):
        why = str(reason) if reason else f"no bid ({ping.bid_path} is {raw_bid if raw_bid is not None else 'missing'})"
        return PingAnswer("rejected", status_code=status, reason=why[:500])
    amount = _amount(raw_bid)
    if amount is None or amount < 0:
        return PingAnswer("error", status_code=status, reason=f"the bid {str(raw_bid)[:50]!r} is not an amount")
    if amount == 0:
        return PingAnswer("rejected", status_code=status, reason="bid 0")
    bid_id = json_path(data, ping.bid_id_path) if ping.bid_id_path else None
    return PingAnswer("bid", amount=amount, bid_id=str(bid_id or "")[:200], status_code=status)


def send_ping(ping: Ping) -> PingAnswer:
    """Ping one buyer and read its bid (network I/O: never inside a transaction). The connection
    gets no longer than the ping's own timeout, so a buyer that does not answer costs only that."""
    started = time.monotonic()
    try:
        answer = http_request(
            "POST", ping.url, body=ping.body, headers=ping.headers, timeout=ping.timeout, connect_timeout=ping.timeout
        )
    except UnsafeDestination as error:
        return PingAnswer("error", latency_ms=_elapsed_ms(started), reason=str(error)[:500])
    except TransportError as error:
        text = str(error)
        timed_out = "timeout" in text.lower() or "timed out" in text.lower() or "longer than" in text
        return PingAnswer("timeout" if timed_out else "error", latency_ms=_elapsed_ms(started), reason=text[:500])
    read = read_ping_answer(answer.status, answer.body, ping)
    read.latency_ms = answer.latency_ms
    if read.outcome == "bid" and answer.latency_ms > ping.timeout * 1000:
        # It answered, but later than the buyer's own timeout (a server that drips its answer).
        return PingAnswer("timeout", latency_ms=answer.latency_ms, status_code=answer.status, reason="bid too late")
    return read


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def post_extra(bid_id: str) -> dict[str, str]:
    """What the winner's post carries beside the lead: the id of the bid it won with."""
    return {"bid_id": bid_id}

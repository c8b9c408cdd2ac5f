"""Ping/post auctions: a sellable lead of an offer that sells by auction is offered to every eligible
buyer at once, and sold to the highest bid at or above the offer's floor.

The outbox entry of kind "auction" is the unit of work; its worker runs the auction:
1. Open (one transaction): lock the lead, check it may be sold, store the Auction, ask
   `auction_eligible_destinations` who takes part. Buyers on fixed routes bid their route's price.
2. Ping every ping/post buyer in parallel, outside any transaction: each gets its own timeout
   (connection included) and the auction waits no longer than the largest of them, so a buyer
   that hangs costs the auction its timeout and no more.
3. Rank: the highest amount first; equal amounts go to the route with the lower priority number,
   then to the older route (lower id), the order the routes list shows. Bids below the floor lose.
4. Post down the ranking (a waterfall): reserve the lead for the bid (the buyer's cap and credit
   checked under lock at the bid's price, and that no other path has given the lead to as many
   buyers as the offer sells it to; a pending Delivery made), post the full lead with the
   bid id, record the answer (an accepted post books the sale at the bid in the ledger). A
   rejection, or no answer in time, goes to the next bid while the lead is younger than the
   offer's maximum age. A shared offer sells to up to N different buyers (advertisers).

The DB work runs in the worker's own thread and the calls in a bounded pool: an auction is a
generator that yields the calls it waits for (`Step`) and is resumed with their answers, so a batch
runs up to AUCTIONS_AT_ONCE auctions side by side without any thread touching the database.
"""

import functools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ..models import (
    Auction,
    AuctionBid,
    Delivery,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LeadEvent,
    LeadStatus,
    OutboxEntry,
)
from .answers import Outcome, Verdict
from .calls import CallResult, perform
from .delivery import COUNTED, _record, credit_refusals, lead_request, route_usage, sent_request
from .outbox import RECORD_EVERY_SECONDS, BatchResult, NotStarted, outbox_enqueue
from .ping_post import Ping, PingAnswer, ping_request, post_extra, send_ping

# The auction stops waiting at its largest ping timeout: a bid later than that, or handed back by
# its thread later than that, did not come in time and is logged as a timeout.
PING_GRACE_SECONDS = 0.0
UNSOLD_STATUSES = (Auction.Status.UNSOLD, Auction.Status.EXPIRED, Auction.Status.INTERRUPTED)


@dataclass
class Step:
    """What an auction waits for: calls made in parallel, given up on after `wait_seconds`."""

    calls: list[Callable[[], Any]]
    wait_seconds: float


AuctionRun = Generator[Step, list[Any], None]


# --- Opening ---------------------------------------------------------------------------------------


def _why_not_auctioned(lead: Lead) -> str:
    if lead.erased_at:
        return "the person's data was erased"
    if not lead.is_billable or lead.status == LeadStatus.RETURNED:
        return "invalid, duplicate, test or returned"
    if not lead.consent:
        return "the person did not consent to be contacted"
    return ""


def _set_payload(entry: OutboxEntry, **payload: Any) -> None:
    entry.payload = {**entry.payload, **payload}
    OutboxEntry.objects.filter(pk=entry.pk).update(payload=entry.payload)


@dataclass
class _Opened:
    auction: Auction
    lead: Lead
    bids: list[AuctionBid]  # written once the pings are answered (one INSERT), ranked
    pings: list[tuple[AuctionBid, Ping]] = field(default_factory=list)
    bids_written: bool = False

    def write_bids(self) -> None:
        """Every answer, ranked, in one INSERT, in the first transaction after the pings (a commit saved)."""
        if not self.bids_written:
            AuctionBid.objects.bulk_create(self.bids)
            self.bids_written = True


def _close_interrupted(lead_ids: list[int], now: Any) -> None:
    """Auctions of these leads their worker never finished (killed mid-way): each reserved, unanswered
    post is failed, so it holds no cap or credit, and the auction is marked interrupted."""
    running = list(
        Auction.objects.filter(lead_id__in=lead_ids, status=Auction.Status.RUNNING).values_list("pk", flat=True)
    )
    if not running:
        return
    reserved = AuctionBid.objects.filter(auction_id__in=running, delivery__isnull=False).values("delivery_id")
    Delivery.objects.filter(pk__in=reserved, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED,
        reason="the auction was interrupted before the post was answered",
        finished_at=now,
    )
    Auction.objects.filter(pk__in=running).update(
        status=Auction.Status.INTERRUPTED, finished_at=now, note="the worker stopped; the auction ran again"
    )


def _open(entry: OutboxEntry) -> _Opened | None:
    from ..selectors import auction_eligible_destinations

    now = timezone.now()
    with transaction.atomic():
        # The lead first, then routes, then buyers' accounts (as delivery routing locks them).
        lead = (
            Lead.objects.select_for_update(of=("self",))
            .select_related("campaign", "offer", "traffic_source")
            .get(pk=entry.lead_id)
        )
        why = _why_not_auctioned(lead)
        if why:
            if entry.payload.get("skipped") != why:
                LeadEvent.objects.create(
                    lead=lead, kind=LeadEvent.Kind.DELIVERY, data={"auction": "not run", "summary": why}
                )
            _set_payload(entry, skipped=why)
            return None
        offer = lead.offer
        if not offer.sells_by_auction:
            # Switched to fixed routes since the lead came in: it is routed like the others.
            outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.DELIVERY])
            _set_payload(entry, skipped="the offer sells by fixed routes now")
            return None
        if entry.payload.get("auction"):
            _close_interrupted([lead.pk], now)  # this entry ran before and its worker stopped mid-way
        accepted = Delivery.objects.filter(lead=lead, status=Delivery.Status.ACCEPTED).count()
        wanted = offer.auction_buyers_per_lead - accepted
        if wanted <= 0:
            _set_payload(entry, skipped="already sold")
            return None
        routes = auction_eligible_destinations(lead, now=now)
        auction = Auction(
            lead=lead,
            offer=offer,
            floor_price=offer.auction_floor_price,
            currency=offer.currency,
            buyers_wanted=wanted,
            started_at=now,
            requested_by_id=entry.payload.get("requested_by"),
        )
        opened = _Opened(auction, lead, [_bid_row(auction, route, lead) for route in routes])
        for bid in opened.bids:
            destination = bid.destination
            if bid.outcome == AuctionBid.Outcome.BID:  # a ping/post buyer, not pinged yet
                secrets = [secret for secret in destination.secrets.all() if secret.revoked_at is None]
                ping_id = f"ping_{auction.public_id.hex}_{destination.pk}"
                ping = ping_request(lead=lead, destination=destination, ping_id=ping_id, secrets=secrets)
                opened.pings.append((bid, ping))
        auction.buyers_pinged = len(opened.pings)
        auction.save(force_insert=True)
        _set_payload(entry, auction=auction.pk)
    return opened


def _bid_row(auction: Auction, route: DeliveryRoute, lead: Lead) -> AuctionBid:
    destination = route.destination
    if destination.kind != DeliveryDestination.Kind.PING_POST:
        return AuctionBid(
            auction=auction,
            destination=destination,
            route=route,
            outcome=AuctionBid.Outcome.FIXED,
            amount=route.price_for(lead),
        )
    if not any(secret.revoked_at is None for secret in destination.secrets.all()):
        reason = "no signing secret: create one on the destination's page and give it to the buyer"
        return AuctionBid(
            auction=auction, destination=destination, route=route, outcome=AuctionBid.Outcome.ERROR, reason=reason
        )
    # Outcome "bid" until the ping is answered: the ping's answer overwrites it.
    return AuctionBid(auction=auction, destination=destination, route=route, outcome=AuctionBid.Outcome.BID)


# --- Pinging and ranking -----------------------------------------------------------------------


def _take_answers(pings: list[tuple[AuctionBid, Ping]], answers: list[Any], waited_ms: int) -> None:
    """Each pinged bid gets its answer; a ping still out when the auction stopped waiting timed out."""
    for (bid, _ping), answer in zip(pings, answers, strict=True):
        if not isinstance(answer, PingAnswer):
            answer = _no_answer(answer, waited_ms)
        bid.outcome, bid.amount, bid.bid_id = answer.outcome, answer.amount, answer.bid_id
        bid.latency_ms, bid.status_code, bid.reason = answer.latency_ms, answer.status_code, answer.reason


def rank_bids(bids: Iterable[AuctionBid], floor: Decimal) -> list[AuctionBid]:
    """The bids that may win, best first: the highest amount; on equal amounts the route with the
    lower priority number, then the older route (lower id). Deterministic, whoever answered first."""
    return sorted(
        (
            bid
            for bid in bids
            if bid.outcome in (AuctionBid.Outcome.BID, AuctionBid.Outcome.FIXED)
            and bid.amount is not None
            and bid.amount >= floor
        ),
        key=lambda bid: (-(bid.amount or 0), bid.route.priority if bid.route else 0, bid.route_id or 0),
    )


# --- Posting ---------------------------------------------------------------------------------------


def _reserve(opened: _Opened, bid: AuctionBid, now: Any) -> Delivery | str:
    """Under lock, make the pending delivery this bid buys, or say why the bid cannot buy now."""
    lead, route, destination = opened.lead, bid.route, bid.destination  # loaded when the auction opened
    if route is None:
        return "its route was deleted"
    with transaction.atomic():
        opened.write_bids()
        # The lead, then its route (as routing locks them); what may have changed since the auction
        # opened is read again under the locks.
        fresh = (
            Lead.objects.select_for_update()
            .filter(pk=lead.pk)
            .values("erased_at", "validity", "is_duplicate", "is_test", "status", "consent")
            .get()
        )
        for name, value in fresh.items():
            setattr(lead, name, value)
        why = _why_not_auctioned(lead)
        if why:
            return f"not sold: {why}"
        caps = (
            DeliveryRoute.objects.select_for_update()
            .filter(pk=route.pk, is_active=True, destination__is_active=True)
            .values_list("hourly_cap", "daily_cap")
            .first()
        )
        if caps is None:
            return "its route or destination was switched off"
        route.hourly_cap, route.daily_cap = caps
        earlier = Delivery.objects.filter(
            Q(destination=destination) | Q(destination__advertiser_id=destination.advertiser_id, status__in=COUNTED),
            lead=lead,
        ).values_list("destination_id", flat=True)
        for destination_id in earlier:
            return "it already had this lead" if destination_id == destination.pk else "this buyer already has the lead"
        # Any other path's hold counts too (a delivery staff sent, still being tried, or one made since
        # the auction opened): an exclusive lead is never sold to a second buyer.
        holders = (
            Delivery.objects.filter(lead=lead, status__in=COUNTED)
            .values("destination__advertiser_id")
            .distinct()
            .count()
        )
        limit = lead.offer.auction_buyers_per_lead
        if holders >= limit:
            buyers = f"{holders} buyer{'s' * (holders != 1)}"
            return f"not sold: the lead is already held by {buyers} (the offer sells it to {limit})"
        if route.hourly_cap is not None or route.daily_cap is not None:
            this_hour, today = route_usage([route.pk], now).get(route.pk, (0, 0))
            if route.daily_cap is not None and today >= route.daily_cap:
                return "at its daily cap"
            if route.hourly_cap is not None and this_hour >= route.hourly_cap:
                return "at its hourly cap"
        refusal = credit_refusals(lead, [route], {route.pk: bid.amount or Decimal("0")}).get(route.pk)
        if refusal:
            return refusal
        delivery = Delivery.objects.create(
            lead=lead, destination=destination, route=route, price=bid.amount, currency=lead.offer.currency
        )
        delivery.lead = lead
        bid.delivery = delivery
        # Linked at once: an auction interrupted before the post's answer frees this buyer.
        AuctionBid.objects.filter(pk=bid.pk).update(delivery=delivery)
        return delivery


def _post_request(delivery: Delivery, bid: AuctionBid) -> Any:
    destination = delivery.destination
    extra = post_extra(bid.bid_id) if bid.outcome == AuctionBid.Outcome.BID else None
    return lead_request(destination=destination, lead=delivery.lead, msg_id=delivery.webhook_id, extra=extra)


def _record_post(delivery: Delivery, request: Any, result: CallResult | None, bid: AuctionBid) -> str:
    """Write the post's attempt and the delivery's end; a sale is booked at the bid. An answer that
    did not come in time is a failure here: the waterfall cannot wait for a retry schedule."""
    if result is None:
        result = CallResult(Verdict(Outcome.FAILED, reason="no answer in time"), error="no answer in time")
    if result.verdict.outcome == Outcome.RETRY:
        reason = f"{result.verdict.reason or 'no answer'}; the lead went to the next bid"
        result = CallResult(Verdict(Outcome.FAILED, reason=reason[:500]), result.status_code, result.latency_ms,
                            result.response, result.error or reason[:500])  # fmt: skip
    with transaction.atomic():
        outcome, _delay = _record(delivery, sent_request(request, result), delivery.lead)
        post = {
            Outcome.ACCEPTED: AuctionBid.Post.ACCEPTED,
            Outcome.REJECTED: AuctionBid.Post.REJECTED,
        }.get(outcome, AuctionBid.Post.FAILED)
        bid.post_outcome, bid.post_reason = post, (delivery.reason or result.verdict.reason)[:500]
        AuctionBid.objects.filter(pk=bid.pk).update(post_outcome=bid.post_outcome, post_reason=bid.post_reason)
    return post


def _mark(bids: Iterable[AuctionBid], post: str, reason: str) -> None:
    for bid in bids:
        bid.post_outcome, bid.post_reason = post, reason[:500]


# --- One auction -----------------------------------------------------------------------------------


WATERFALL_SHARE_OF_TIME_LIMIT = 0.4  # with the half before it started, room for one post's timeout


def _auction(entry: OutboxEntry) -> AuctionRun:
    opened = _open(entry)
    if opened is None:
        return
    auction, bids = opened.auction, opened.bids
    started = time.monotonic()
    if opened.pings:
        wait_for = max(ping.timeout for _bid, ping in opened.pings) + PING_GRACE_SECONDS
        answers = yield Step([_ping_call(ping) for _bid, ping in opened.pings], wait_for)
        _take_answers(opened.pings, answers, int((time.monotonic() - started) * 1000))
    ping_ms = int((time.monotonic() - started) * 1000)

    ranked = rank_bids(bids, auction.floor_price)
    for rank, bid in enumerate(ranked, start=1):
        bid.rank = rank
    _mark(
        (bid for bid in bids if bid.rank is None and bid.amount is not None and bid.outcome in ("bid", "fixed")),
        AuctionBid.Post.BELOW_FLOOR,
        f"below the floor of {auction.floor_price} {auction.currency}",
    )
    marked: list[AuctionBid] = []  # skipped or too late: written with the auction's end
    max_age = auction.offer.auction_max_lead_age_seconds
    sold: list[AuctionBid] = []
    posted = 0
    expired = False
    for index, bid in enumerate(ranked):
        if len(sold) >= auction.buyers_wanted:
            break
        now = timezone.now()
        age = (now - opened.lead.created_at).total_seconds()
        # The waterfall offers a lead on only while it is fresh, and only within the worker's time: a
        # batch starts no auction past half its time limit, and one started before must end before
        # the limit (a killed task's reserved post would be closed as failed, and sold again).
        out_of_time = time.monotonic() - started >= settings.OUTBOX_TASK_TIME_LIMIT * WATERFALL_SHARE_OF_TIME_LIMIT
        if posted and (age >= max_age or out_of_time):
            # The first post always goes.
            why = "the auction used its worker's time" if out_of_time and age < max_age else "the lead was too old"
            _mark(ranked[index:], AuctionBid.Post.EXPIRED, f"{why}: {int(age)} s old (maximum {max_age} s)")
            marked += ranked[index:]
            expired = True
            break
        reserved = _reserve(opened, bid, now)
        if isinstance(reserved, str):
            _mark([bid], AuctionBid.Post.SKIPPED, reserved)
            marked.append(bid)
            if reserved.startswith("not sold"):
                _mark(ranked[index + 1 :], AuctionBid.Post.SKIPPED, reserved)
                marked += ranked[index + 1 :]
                break
            continue
        request = _post_request(reserved, bid)
        wait_for = request.timeout + settings.DELIVERY_CONNECT_TIMEOUT + 1
        [result] = yield Step([_post_call(request)], wait_for)
        posted += 1
        if _record_post(reserved, request, result if isinstance(result, CallResult) else None, bid) == "accepted":
            sold.append(bid)
    _finish(auction, opened, bids, marked, sold, expired, ping_ms, started)


def _ping_call(ping: Ping) -> Callable[[], PingAnswer]:
    return lambda: send_ping(ping)


def _post_call(request: Any) -> Callable[[], CallResult]:
    return lambda: perform(request)


def _no_answer(error: Any, latency_ms: int) -> PingAnswer:
    if error is None:
        return PingAnswer("timeout", latency_ms=latency_ms, reason="no answer within the auction's time")
    return PingAnswer("error", latency_ms=latency_ms, reason=f"{type(error).__name__}: {error}"[:500])


def _finish(
    auction: Auction,
    opened: _Opened,
    bids: list[AuctionBid],
    marked: list[AuctionBid],
    sold: list[AuctionBid],
    expired: bool,
    ping_ms: int,
    started: float,
) -> None:
    if sold:
        status, note = Auction.Status.SOLD, f"sold to {len(sold)} buyer(s)"
    elif expired:
        status, note = Auction.Status.EXPIRED, "every bid that was posted rejected it before the lead got too old"
    elif not bids:
        status, note = Auction.Status.UNSOLD, "no buyer of this offer takes the lead now (countries, types, caps)"
    elif not any(bid.rank for bid in bids):
        status, note = (
            Auction.Status.UNSOLD,
            f"no bid at or above the floor of {auction.floor_price} {auction.currency}",
        )
    else:
        status, note = Auction.Status.UNSOLD, "no bidder took the lead"
    with transaction.atomic():
        opened.write_bids()  # no bid was posted: the answers are written here
        # Marked bids share their outcome and reason in groups: one UPDATE per group (usually none).
        groups: dict[tuple[str, str], list[int]] = {}
        for bid in marked:
            groups.setdefault((bid.post_outcome, bid.post_reason), []).append(bid.pk)
        for (post_outcome, post_reason), ids in groups.items():
            AuctionBid.objects.filter(pk__in=ids).update(post_outcome=post_outcome, post_reason=post_reason)
        auction.status, auction.note, auction.sold_count = status, note, len(sold)
        auction.price = sum((bid.amount or Decimal("0") for bid in sold), Decimal("0")) if sold else None
        auction.winner_id = sold[0].destination_id if sold else None
        auction.finished_at = timezone.now()
        auction.ping_ms = ping_ms
        auction.duration_ms = int((time.monotonic() - started) * 1000)
        auction.save(
            update_fields=["status", "note", "sold_count", "price", "winner", "finished_at", "ping_ms", "duration_ms"]
        )
        price = f" for {auction.price} {auction.currency}" if sold else ""
        LeadEvent.objects.create(
            lead_id=opened.lead.pk,
            kind=LeadEvent.Kind.DELIVERY,
            data={"auction": status, "summary": f"{note}{price}; {len(bids)} buyer(s) took part"},
        )


# --- Running auctions in the worker -----------------------------------------------------------------


@dataclass(eq=False)
class _Live:
    """An auction under way: its generator and the calls of its current step. When the last call
    of a step ends (in a pool thread), the auction puts itself on the `ready` queue."""

    entry: OutboxEntry
    run: AuctionRun
    ready: "queue.SimpleQueue[tuple[_Live, int]]"
    futures: list[Future[Any]] = field(default_factory=list)
    give_up_at: float = 0.0
    step: int = 0
    left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, step: Step, pool: ThreadPoolExecutor) -> None:
        self.step += 1
        self.left = len(step.calls)
        self.give_up_at = time.monotonic() + step.wait_seconds
        self.futures = [pool.submit(call) for call in step.calls]
        for future in self.futures:
            future.add_done_callback(functools.partial(self._call_ended, self.step))
        if not self.futures:
            self.ready.put((self, self.step))

    def _call_ended(self, step: int, _future: Future[Any]) -> None:
        with self.lock:
            if step != self.step:
                return  # a call of a step given up on, ending late
            self.left -= 1
            if self.left == 0:
                self.ready.put((self, step))

    def answers(self) -> list[Any]:
        """Each call's answer; None for one still running (given up on), the error for one that raised."""
        with self.lock:
            self.step += 1  # late calls of this step no longer count
        answers: list[Any] = []
        for future in self.futures:
            if not future.done():
                future.cancel()
                answers.append(None)
            elif future.exception() is not None:
                answers.append(future.exception())
            else:
                answers.append(future.result())
        return answers


def _advance(live: _Live, answers: list[Any] | None, pool: ThreadPoolExecutor) -> BatchResult | None:
    """Run the auction's DB work up to its next calls; the entry's result when it has ended."""
    try:
        step = next(live.run) if answers is None else live.run.send(answers)
    except StopIteration:
        return live.entry, None
    except Exception as error:  # the entry ends with it (retried by the outbox); the batch goes on
        return live.entry, error
    live.start(step, pool)
    return None


def auctions_run(entries: list[OutboxEntry], deadline: float) -> Iterator[BatchResult | None]:
    """The auction kind's batch handler: up to AUCTIONS_AT_ONCE auctions at once, their calls in one
    pool large enough that no auction's ping waits for a thread (AUCTION_PINGS_AT_ONCE each).

    Auctions whose calls have all ended go first; a new auction opens only when none is waiting on
    the worker's thread, so opening one never delays another's post."""
    at_once = settings.AUCTIONS_AT_ONCE
    pool = ThreadPoolExecutor(max_workers=at_once * settings.AUCTION_PINGS_AT_ONCE, thread_name_prefix="auction")
    ready: queue.SimpleQueue[tuple[_Live, int]] = queue.SimpleQueue()
    arrived: list[tuple[_Live, int]] = []
    waiting = deque(entries)
    live: list[_Live] = []
    try:
        while waiting or live:
            while not ready.empty():
                arrived.append(ready.get())
            # Only a step still current counts: one given up on may have ended just after.
            due = [item for item, step in arrived if item.step == step and item in live]
            arrived = []
            now = time.monotonic()
            due += [item for item in live if item.give_up_at <= now and item not in due]
            for item in due:
                ended = _advance(item, item.answers(), pool)
                if ended is not None:
                    live.remove(item)
                    yield ended
            if due:
                continue
            if waiting and len(live) < at_once:
                entry = waiting.popleft()
                if time.monotonic() > deadline:
                    yield entry, NotStarted()
                    continue
                opened = _Live(entry, _auction(entry), ready)
                ended = _advance(opened, None, pool)
                if ended is None:
                    live.append(opened)
                else:
                    yield ended
                continue
            if not live:
                continue
            soonest = min(item.give_up_at for item in live) - time.monotonic()
            try:
                arrived.append(ready.get(timeout=max(min(soonest, RECORD_EVERY_SECONDS), 0.001)))
            except queue.Empty:
                yield None  # still waiting: what has finished is written meanwhile
    finally:
        # Calls still running were given up on; their threads end at their own timeouts.
        pool.shutdown(wait=False, cancel_futures=True)


def auction_outbox_handler(entry: OutboxEntry) -> None:
    """One auction, as a plain outbox handler (the admin's and tests' path)."""
    for result in auctions_run([entry], float("inf")):
        if result is not None and result[1] is not None:
            raise result[1]


# --- Staff actions ---------------------------------------------------------------------------------


def auction_needed(lead: Lead) -> bool:
    """A new lead is auctioned when it is sellable and its offer sells by auction."""
    return lead.is_billable and lead.offer.sells_by_auction


@transaction.atomic
def auctions_rerun(*, leads: QuerySet[Lead], user: Any = None) -> int:
    """Auction again leads that are held or failed: sellable, of an offer that sells by auction, sold
    to fewer buyers than it may be, and with no auction waiting or running."""
    in_flight = OutboxEntry.objects.filter(
        kind=OutboxEntry.Kind.AUCTION, status__in=(OutboxEntry.Status.PENDING, OutboxEntry.Status.PROCESSING)
    ).values("lead_id")
    candidates = (
        leads.filter(validity="valid", is_duplicate=False, is_test=False, consent=True, erased_at__isnull=True)
        .exclude(status=LeadStatus.RETURNED)
        .filter(offer__sells_by_auction=True)
        .exclude(pk__in=in_flight)
        .select_related("offer")
    )
    sold = dict(
        Delivery.objects.filter(lead__in=candidates, status=Delivery.Status.ACCEPTED)
        .values_list("lead_id")
        .annotate(total=Count("id"))
        .order_by()
    )
    again = []
    for lead in candidates:
        if sold.get(lead.pk, 0) >= lead.offer.auction_buyers_per_lead:
            continue
        outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.AUCTION], payload={"requested_by": user.pk if user else None})
        again.append(lead.pk)
    # No entry runs these leads' auctions: one still running was left by a worker that stopped (its
    # entry since failed), and its reserved post would hold the buyer's cap and credit for ever.
    _close_interrupted(again, timezone.now())
    return len(again)

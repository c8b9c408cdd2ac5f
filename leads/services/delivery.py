"""Delivery of leads to buyers: routing by priority, weight and caps; signed sends; retries; held queue.

The outbox entry of kind "delivery" is the unit of work. Its payload names the Delivery being sent
(once a buyer is chosen) or why the lead is held. A run routes the lead, sends it, and records the
answer; a rejection moves on to the next buyer, a temporary failure waits for the retry schedule.
"""

import base64
import functools
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from campaigns.models import Campaign, Offer, TrafficSource
from leadcrm.bulk import (
    CHUNK_ROWS,
    bulk_insert_rows,
    bulk_update_rows,
    bulk_update_rows_if,
    insert_statement,
    instance_builder,
    take_deferred,
)
from leadcrm.config_cache import cached
from leadcrm.encryption import decrypt, encrypt

from ..models import (
    BuyerAccount,
    BuyerSuppression,
    Delivery,
    DeliveryAttempt,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LeadEvent,
    LeadStatus,
    OutboxEntry,
    WebhookSecret,
)
from ..selectors import suppressed_advertisers_by_lead
from .answers import Outcome, Verdict
from .calls import (
    ATTEMPT_COLUMNS,
    CallResult,
    PartnerRequest,
    attempt_values,
    end_entry,
    partner_calls_batch,
    perform,
    run_partner_call,
    settle,
)
from .delivery_payload import email_text, mapped_payload, request_body
from .ledger import buyer_balances, ledger_post_return, ledger_post_sales
from .outbox import GiveUp, RetryLater, dispatch, outbox_enqueue
from .signing import signed_headers

BUYERS_PER_RUN = 3  # rejections in a row before the run yields (each send can take its timeout)
RECHECK_UNROUTABLE = timedelta(hours=1)  # held for a reason other than caps: look again hourly
COUNTED = (Delivery.Status.PENDING, Delivery.Status.ACCEPTED)  # what uses up a buyer's cap
# Lead columns that routing, the payload, the ledger and its rollups never read (the sales workflow's,
# and the submission's and the judgement's details): a batch loads its leads without them, a third of
# the columns and four of the six JSON documents a lead costs to read.
NOT_DELIVERED = (
    "updated_at",
    "idempotency_key",
    "landing_page",
    "tracked_click",
    "raw_data",
    "os",
    "browser",
    "action",
    "validity_reasons",
    "duplicate_of",
    "qualification_reasons",
    "score_breakdown",
    "consent_version",
    "consent_ip",
    "status_reason",
    "converted_at",
    "returned_at",
    "assigned_to",
    "assigned_at",
    "first_contacted_at",
    "next_follow_up",
    "escalated_at",
)


# --- Caps and routing --------------------------------------------------------------------------


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    local = timezone.localtime(now)
    hour = local.replace(minute=0, second=0, microsecond=0)
    return hour, hour.replace(hour=0)


def route_usage(route_ids: Iterable[int], now: datetime | None = None) -> dict[int, tuple[int, int]]:
    """{route id: (leads this hour, leads today)} in one query; the admin shows the same numbers."""
    hour, day = period_starts(now or timezone.now())
    rows = (
        Delivery.objects.filter(route_id__in=list(route_ids), created_at__gte=day, status__in=COUNTED)
        .values("route_id")
        .annotate(today=Count("id"), this_hour=Count("id", filter=Q(created_at__gte=hour)))
    )
    return {row["route_id"]: (row["this_hour"], row["today"]) for row in rows}


def _is_capped(route: DeliveryRoute) -> bool:
    return route.hourly_cap is not None or route.daily_cap is not None


@dataclass
class RoutingChoice:
    route: DeliveryRoute | None
    held_reason: str = ""
    recheck_at: datetime | None = None
    price: Decimal | None = None


def choose_route(
    lead: Lead,
    routes: list[DeliveryRoute],
    now: datetime,
    out_of_credit: dict[int, str] | None = None,
    usage: dict[int, tuple[int, int]] | None = None,
) -> RoutingChoice:
    """The first buyer in priority order with room under its caps and its credit limit; weighted among
    equal priorities. `out_of_credit`: why routes are left out whose buyer cannot pay for the lead (or
    keeps it out with its suppression list); `usage`: the capped routes' leads this hour and today, when
    the caller has counted them already."""
    if not routes:
        return RoutingChoice(None, "no buyer left for this offer", now + RECHECK_UNROUTABLE)
    out_of_credit = out_of_credit or {}

    def refusal(route: DeliveryRoute) -> str:
        return route.refusal(lead) or out_of_credit.get(route.pk, "")

    accepting = [route for route in routes if not refusal(route)]
    if not accepting:
        refusals = "; ".join(f"{route.destination.name}: {refusal(route)}" for route in routes)
        return RoutingChoice(None, f"no buyer takes it ({refusals})"[:300], now + RECHECK_UNROUTABLE)
    if usage is None:
        capped = [route.pk for route in accepting if _is_capped(route)]
        usage = route_usage(capped, now) if capped else {}
    resets = []
    with_room = []
    for route in accepting:
        this_hour, today = usage.get(route.pk, (0, 0))
        # The periods' starts (a time zone conversion) only for a buyer at its cap: most have room.
        if route.daily_cap is not None and today >= route.daily_cap:
            day = period_starts(now)[1]
            resets.append(timezone.localtime(day + timedelta(hours=26)).replace(hour=0))
        elif route.hourly_cap is not None and this_hour >= route.hourly_cap:
            hour = period_starts(now)[0]
            resets.append(hour + timedelta(hours=1))
        else:
            with_room.append(route)
    for _priority, same_priority in groupby(with_room, key=lambda route: route.priority):
        group = list(same_priority)
        chosen = random.choices(group, weights=[route.weight for route in group])[0]  # noqa: S311
        return RoutingChoice(chosen, price=chosen.price_for(lead))
    return RoutingChoice(None, "every buyer is at its cap", min(resets))


def credit_left(advertiser_ids: Iterable[int], currencies: Iterable[str]) -> dict[tuple[int, str], Decimal]:
    """{(advertiser id, currency): what the buyer's account can still pay} for buyers with an account.

    Locks the accounts (after the leads and the routes, always in that order), so two leads routed at
    once cannot both spend a buyer's last credit. A balance is the buyer's ledger added up; a price
    already promised to a pending delivery counts as spent (a delivery is pending or its sale is in
    the ledger, never both nor neither). Buyers without an account in a currency have no limit in it."""
    accounts = list(
        BuyerAccount.objects.select_for_update()
        .filter(advertiser_id__in=set(advertiser_ids), currency__in=set(currencies))
        .order_by("pk")
    )
    left: dict[tuple[int, str], Decimal] = {}
    for currency in sorted({account.currency for account in accounts}):  # one or two, never one per lead
        of_currency = {account.advertiser_id: account for account in accounts if account.currency == currency}
        promised = dict(
            Delivery.objects.filter(
                status=Delivery.Status.PENDING, destination__advertiser_id__in=list(of_currency), currency=currency
            )
            .values_list("destination__advertiser_id")
            .annotate(total=Sum("price"))
            .order_by()
        )
        balances = buyer_balances(of_currency, currency)
        for advertiser_id, account in of_currency.items():
            balance = balances.get(advertiser_id) or Decimal(0)
            left[advertiser_id, currency] = balance + account.credit_limit - (promised.get(advertiser_id) or 0)
    return left


def credit_refusal(available: Decimal, currency: str) -> str:
    """Why a buyer's account cannot pay: what is left of its credit, or how far past its limit it is
    (a limit lowered below what the buyer already owes)."""
    if available < 0:
        return f"over its credit limit ({-available:.2f} {currency} past it)"
    return f"at its credit limit ({available:.2f} {currency} left)"


def credit_refusals(
    lead: Lead, routes: list[DeliveryRoute], prices: dict[int, Decimal] | None = None
) -> dict[int, str]:
    """{route id: why not} for routes whose buyer's account cannot pay this lead's price (one lead: an
    auction's winner). `prices`: {route id: price} where the price is not the route's own (a bid).
    Locks the accounts as `credit_left` does."""
    prices = prices or {}
    currency = lead.offer.currency
    left = credit_left({route.destination.advertiser_id for route in routes}, {currency})
    refusals = {}
    for route in routes:
        available = left.get((route.destination.advertiser_id, currency))
        price = prices[route.pk] if route.pk in prices else route.price_for(lead)
        if available is not None and price > available:
            refusals[route.pk] = credit_refusal(available, currency)
    return refusals


class _Router:
    """Routing a batch of leads: the offers' routes, their caps' usage and the buyers' credit are read
    (and locked) once, then kept up to date in memory as each lead takes a buyer."""

    def __init__(self, leads: list[Lead], now: datetime):
        self.now = now
        self.routes: dict[int, list[DeliveryRoute]] = defaultdict(list)
        offers = {lead.offer_id: lead.offer for lead in leads}
        for route in (
            DeliveryRoute.objects.select_for_update(of=("self",))
            .filter(offer_id__in=list(offers), is_active=True, destination__is_active=True)
            .exclude(destination__kind=DeliveryDestination.Kind.PING_POST)  # they buy by auction only
            .select_related("destination")
            .prefetch_related("prices")
            # Whether the buyer keeps a suppression list at all (an index probe): hashing every lead's
            # email and phone costs more than the rest of its routing, and most buyers keep none.
            .annotate(
                buyer_has_list=Exists(
                    BuyerSuppression.objects.filter(advertiser_id=OuterRef("destination__advertiser_id"))
                )
            )
            .order_by("priority", "id")
        ):
            route.offer = offers[route.offer_id]  # priced with the leads' offer already loaded
            self.routes[route.offer_id].append(route)
        every_route = [route for routes in self.routes.values() for route in routes]
        capped = [route.pk for route in every_route if _is_capped(route)]
        self.usage = route_usage(capped, now) if capped else {}
        # Buyers that keep a lead out with their suppression list, for the whole batch in one query
        # (buyer_has_list is an annotation of the routes' query, unknown to the model's type).
        self.suppressed = suppressed_advertisers_by_lead(
            leads,
            {route.destination.advertiser_id for route in every_route if route.buyer_has_list},  # type: ignore[attr-defined]
        )
        self.credit = (
            credit_left(
                {route.destination.advertiser_id for route in every_route}, {o.currency for o in offers.values()}
            )
            if every_route
            else {}
        )

    def choose(self, lead: Lead, tried: set[int]) -> RoutingChoice:
        routes = [route for route in self.routes[lead.offer_id] if route.destination_id not in tried]
        currency = lead.offer.currency
        out_of_credit = {}
        suppressed = self.suppressed.get(lead.pk, set())
        for route in routes:
            available = self.credit.get((route.destination.advertiser_id, currency))
            if route.destination.advertiser_id in suppressed:
                out_of_credit[route.pk] = "the lead is on the buyer's suppression list"
            elif available is not None and route.price_for(lead) > available:
                out_of_credit[route.pk] = credit_refusal(available, currency)
        choice = choose_route(lead, routes, self.now, out_of_credit, self.usage)
        chosen = choice.route
        if chosen is not None:
            # What the next lead of the batch sees: one more lead under the caps, less credit.
            if _is_capped(chosen):
                this_hour, today = self.usage.get(chosen.pk, (0, 0))
                self.usage[chosen.pk] = (this_hour + 1, today + 1)
            key = (chosen.destination.advertiser_id, currency)
            if key in self.credit and choice.price is not None:
                self.credit[key] -= choice.price
        return choice


def _campaign(campaign_id: int) -> Campaign:
    """The campaign with its offer and traffic source, kept per process until configuration changes
    (leadcrm.config_cache), as the intake keeps them: shared, so never changed by a caller."""
    return cached(
        "campaign-with-offer",
        campaign_id,
        lambda: Campaign.objects.select_related("offer", "traffic_source").get(pk=campaign_id),
    )


def _attach_configuration(leads: Iterable[Lead]) -> None:
    """Give the leads their campaign, offer and traffic source, each read once: a batch's leads share
    a few, and joining them to every lead's row cost more to load than the lead itself. No query once
    this process holds the campaigns, unless a lead's offer or source is no longer its campaign's."""
    leads = list(leads)
    campaigns = {campaign_id: _campaign(campaign_id) for campaign_id in {lead.campaign_id for lead in leads}}
    offers = {campaign.offer_id: campaign.offer for campaign in campaigns.values()}
    sources = {campaign.traffic_source_id: campaign.traffic_source for campaign in campaigns.values()}
    if missing := {lead.offer_id for lead in leads} - offers.keys():
        offers.update(Offer.objects.in_bulk(missing))
    if missing := {lead.traffic_source_id for lead in leads} - sources.keys():
        sources.update(TrafficSource.objects.in_bulk(missing))
    for lead in leads:
        lead.campaign = campaigns[lead.campaign_id]
        lead.offer = offers[lead.offer_id]
        lead.traffic_source = sources[lead.traffic_source_id]


def _set_payloads(entries: Iterable[OutboxEntry], payloads: dict[int, dict[str, Any]]) -> None:
    """Give entries new payloads (by entry id) in one statement."""
    changed = []
    for entry in entries:
        if entry.pk in payloads:
            entry.payload = payloads[entry.pk]
            changed.append(entry)
    bulk_update_rows(changed, ["payload"])


Routed = Delivery | None | Exception  # the delivery to send, nothing to deliver, or why the entry ends now


def _route_many(entries: list[OutboxEntry]) -> dict[int, Routed]:
    """Choose a buyer for each entry's lead and create the deliveries, or say why a lead waits, in one
    transaction for the batch: {entry id: the delivery, None (nothing to deliver) or RetryLater}."""
    return _route_batch(entries)[0]


@functools.cache
def _delivery_builder() -> Callable[..., Delivery]:
    return instance_builder(Delivery)


def new_delivery(**values: Any) -> Delivery:
    """A Delivery from attribute values (`lead_id`), built positionally: a batch makes one a lead."""
    return _delivery_builder()(**values)


def _route_batch(entries: list[OutboxEntry]) -> tuple[dict[int, Routed], set[int]]:
    """`_route_many`, and the ids of the deliveries it made: checked under the leads' locks just now,
    they are sent without asking again why not (a send taken over from an earlier entry is asked)."""
    now = timezone.now()
    routed: dict[int, Routed] = {}
    payloads: dict[int, dict[str, Any]] = {}
    events: list[LeadEvent] = []
    with transaction.atomic():
        # Locking the leads (in id order), then their offers' routes, then the buyers' accounts
        # (always in that order) keeps two workers from routing one lead twice or filling one cap
        # or one credit limit past its limit.
        leads = {
            lead.pk: lead
            for lead in Lead.objects.select_for_update()
            .defer(*NOT_DELIVERED)
            .filter(pk__in={entry.lead_id for entry in entries})
            .order_by("pk")
        }
        _attach_configuration(leads.values())
        earlier: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        for lead_id, pk, destination_id, status in Delivery.objects.filter(lead_id__in=list(leads)).values_list(
            "lead_id", "pk", "destination_id", "status"
        ):
            earlier[lead_id].append((pk, destination_id, status))
        waiting: dict[int, Lead] = {}  # entry id: its lead, when it is sellable and not placed yet
        taken_over: dict[int, int] = {}  # entry id: the pending delivery it finishes
        for entry in entries:
            lead = leads.get(entry.lead_id)
            if lead is None:
                routed[entry.pk] = Lead.DoesNotExist(f"lead {entry.lead_id} is gone")
            elif lead.erased_at:
                payloads[entry.pk], routed[entry.pk] = (
                    {"skipped": "not deliverable: the person's data was erased"},
                    None,
                )
            elif not lead.is_billable or lead.status == LeadStatus.RETURNED:
                payloads[entry.pk] = {"skipped": "not deliverable (invalid, duplicate, test or returned)"}
                routed[entry.pk] = None
            # A lead is sold once: another entry (a redelivery, a "route to next buyer", a retried
            # row) may have placed it already. Accepted: nothing to do. Pending: this entry takes
            # that send over, so it is never left without an entry to finish it.
            elif any(status == Delivery.Status.ACCEPTED for _, _, status in earlier[lead.pk]):
                payloads[entry.pk], routed[entry.pk] = {"skipped": "already delivered to a buyer"}, None
            elif pending := next((pk for pk, _, status in earlier[lead.pk] if status == Delivery.Status.PENDING), 0):
                payloads[entry.pk], taken_over[entry.pk] = {"delivery": pending}, pending
            else:
                waiting[entry.pk] = lead
        router = _Router(list(waiting.values()), now)
        created: dict[int, Delivery] = {}  # lead id: its delivery made now (two entries of a lead share it)
        for entry_pk, lead in waiting.items():
            if lead.pk in created:
                routed[entry_pk] = created[lead.pk]
                continue
            choice = router.choose(lead, {destination_id for _, destination_id, _ in earlier[lead.pk]})
            if choice.route is None:
                entry = next(entry for entry in entries if entry.pk == entry_pk)
                if entry.payload.get("held") != choice.held_reason:
                    events.append(LeadEvent(lead=lead, kind=LeadEvent.Kind.DELIVERY, data={"held": choice.held_reason}))
                payloads[entry_pk] = {"held": choice.held_reason}
                recheck_at = choice.recheck_at or now + RECHECK_UNROUTABLE
                delay = max((recheck_at - now).total_seconds(), 1)
                routed[entry_pk] = RetryLater(f"held: {choice.held_reason}", delay=delay)
                continue
            made = new_delivery(
                lead_id=lead.pk,
                destination_id=choice.route.destination_id,
                route_id=choice.route.pk,
                price=choice.price,
                currency=lead.offer.currency,
            )
            made.lead, made.destination = lead, choice.route.destination  # sent with them loaded
            created[lead.pk] = routed[entry_pk] = made
        bulk_insert_rows(list(created.values()))
        for entry_pk, delivery in routed.items():
            if isinstance(delivery, Delivery):
                payloads[entry_pk] = {"delivery": delivery.pk}
        if taken_over:
            pending_ones = Delivery.objects.select_related("destination").in_bulk(set(taken_over.values()))
            for entry_pk, pk in taken_over.items():
                routed[entry_pk] = pending_ones[pk]
                pending_ones[pk].lead = leads[pending_ones[pk].lead_id]  # sent with the locked lead
        LeadEvent.objects.bulk_create(events)
        _set_payloads(entries, payloads)
    return routed, {delivery.pk for delivery in created.values()}


def _route(entry: OutboxEntry) -> Delivery | None:
    """Choose a buyer for one entry and create the Delivery (None: nothing to deliver); a lead that
    waits raises RetryLater with the time to look again."""
    routed = _route_many([entry])[entry.pk]
    if isinstance(routed, Exception):
        raise routed
    return routed


# --- Sending -------------------------------------------------------------------------------------


def _auth_header(destination: DeliveryDestination) -> dict[str, str]:
    secret = decrypt(destination.auth_secret_encrypted)
    if destination.auth == DeliveryDestination.Auth.BASIC:
        token = base64.b64encode(f"{destination.auth_username}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if destination.auth == DeliveryDestination.Auth.BEARER:
        return {"Authorization": f"Bearer {secret}"}
    return {}


@dataclass
class SentRequest:
    """What we sent and what came back, for the attempt log and the admin's test button."""

    verdict: Verdict
    url: str = ""
    request_headers: dict[str, str] | None = None
    request_body: str = ""
    status_code: int | None = None
    latency_ms: int = 0
    response: str = ""
    error: str = ""


@dataclass
class Signer:
    """A destination's decrypted signing secrets and authorization header."""

    keys: list[str]
    auth: dict[str, str]


def destination_signers(destinations: Iterable[DeliveryDestination]) -> dict[int, Signer]:
    """{destination id: its signer}. A destination's secrets are configuration: a worker reads them
    once (a query, and their decryption), not once per batch, until a secret is made, revoked or
    deleted. Kept per destination, so a worker selling to many buyers keeps one entry each."""
    return {
        destination.pk: Signer(
            cached("destination-signing-keys", destination.pk, functools.partial(_signing_keys, destination.pk)),
            _auth_header(destination),
        )
        for destination in destinations
    }


def _signing_keys(destination_id: int) -> list[str]:
    """The destination's active secrets, decrypted, newest first."""
    secrets = WebhookSecret.objects.filter(destination_id=destination_id, revoked_at__isnull=True)
    return [decrypt(secret.secret_encrypted) for secret in secrets.order_by("-created_at", "-id")]


def lead_request(
    *,
    destination: DeliveryDestination,
    lead: Lead,
    msg_id: str,
    signer: Signer | None = None,
    extra: dict[str, Any] | None = None,
) -> PartnerRequest:
    """The call that sends this lead to this destination: a signed POST, or an email to its inbox.
    `signer`: the destination's secrets when the caller has read them already (a batch); `extra`:
    fields sent beside the lead's (an auction's bid id)."""
    payload = {**mapped_payload(lead, destination.field_mapping), **(extra or {})}
    if destination.kind == DeliveryDestination.Kind.EMAIL:
        subject, text = email_text(lead, payload)
        message = EmailMessage(subject, text, to=destination.email_to, headers={"X-Leadcrm-Delivery-Id": msg_id})
        return PartnerRequest(url="mailto:" + ",".join(destination.email_to), email=message, body=text.encode())
    body, content_type = request_body(destination, payload)
    if signer is None:
        signer = destination_signers([destination])[destination.pk]
    if not signer.keys:
        reason = "no signing secret: create one on the destination's page (New signing secret) and give it to the buyer"
        return PartnerRequest(url=destination.url, refusal=reason)
    headers = {
        **destination.headers,
        "Content-Type": content_type,
        **signer.auth,
        **signed_headers(keys=signer.keys, msg_id=msg_id, body=body, timestamp=int(time.time())),
    }
    return PartnerRequest(
        url=destination.url,
        body=body,
        headers=headers,
        timeout=destination.timeout_seconds,
        follow_redirects=destination.follow_redirects,
        judge={
            "accept_path": destination.accept_json_path,
            "accept_value": destination.accept_json_value,
            "reason_path": destination.reason_json_path,
            "reference_path": destination.reference_json_path,
        },
        rejection_is_final=False,  # a buyer's rejection moves the lead to the next buyer
    )


def sent_request(request: PartnerRequest, result: CallResult) -> SentRequest:
    shown_headers = {k: ("***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}
    return SentRequest(
        result.verdict,
        url=request.url,
        request_headers=shown_headers or None,
        request_body=(request.body or b"").decode(errors="replace"),
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        response=result.response,
        error=result.error,
    )


def send_lead(*, destination: DeliveryDestination, lead: Lead, msg_id: str) -> SentRequest:
    """Send one lead to one destination and judge the answer. Network I/O: never inside a transaction."""
    request = lead_request(destination=destination, lead=lead, msg_id=msg_id)
    return sent_request(request, perform(request))


STATUS_OF_OUTCOME = {
    Outcome.ACCEPTED: Delivery.Status.ACCEPTED,
    Outcome.REJECTED: Delivery.Status.REJECTED,
    Outcome.FAILED: Delivery.Status.FAILED,
    Outcome.RETRY: Delivery.Status.PENDING,
}
ANSWER_FIELDS = ["last_status_code", "reason", "buyer_reference", "finished_at"]  # from a delivery's first answer
RECORDED_FIELDS = ["status", "attempts", *ANSWER_FIELDS]
# The columns of the rows _record_many writes (as calls.attempt_row and a LeadEvent would).
ATTEMPT_FIELDS = ["delivery_id", *ATTEMPT_COLUMNS]
EVENT_FIELDS = ["lead_id", "kind", "data"]


def _record(delivery: Delivery, sent: SentRequest, lead: Lead | None = None) -> tuple[str, float | None]:
    """Write the attempt and the delivery's new state; returns (outcome, seconds until retry)."""
    return _record_many([(delivery, sent, lead)])[0]


def _record_many(sends: list[tuple[Delivery, SentRequest, Lead | None]]) -> list[tuple[str, float | None]]:
    """Write many sends' attempts and their deliveries' new states in one transaction, a few statements
    for the lot; returns (outcome, seconds until retry) for each send."""
    now = timezone.now()
    tries = [delivery.attempts + 1 for delivery, _, _ in sends]
    settled = [settle(sent.verdict, tried) for (_, sent, _), tried in zip(sends, tries, strict=True)]
    # Each delivery's new state, set on it (two entries may have sent one delivery: its first answer
    # is kept), and put back where the row turned out not to be pending any more.
    first: dict[int, tuple[Delivery, Lead | None, tuple[Any, ...]]] = {}
    for (delivery, sent, lead), (outcome, _delay), tried in zip(sends, settled, tries, strict=True):
        status = STATUS_OF_OUTCOME[outcome]
        if delivery.pk not in first:
            first[delivery.pk] = (delivery, lead, tuple(getattr(delivery, name) for name in ANSWER_FIELDS))
            delivery.last_status_code, delivery.reason = sent.status_code, sent.verdict.reason
            delivery.buyer_reference = sent.verdict.reference or delivery.buyer_reference
            delivery.finished_at = None if status == Delivery.Status.PENDING else now
            delivery.status = status
        delivery.attempts = tried
    # The attempt log and the timeline as plain rows (no model instance each).
    attempts: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    disabled = {}
    for (delivery, sent, _lead), (outcome, _delay) in zip(sends, settled, strict=True):
        verdict, status = sent.verdict, STATUS_OF_OUTCOME[outcome]
        if status != Delivery.Status.PENDING:
            event = {"buyer": delivery.destination.name, "outcome": status, "reason": verdict.reason}
            events.append((delivery.lead_id, LeadEvent.Kind.DELIVERY, {**event, "webhook_id": delivery.webhook_id}))
        attempts.append((delivery.pk, *attempt_values(url=sent.url, result=sent, outcome=outcome)))
        if verdict.disable_destination:
            disabled[delivery.destination_id] = f"The buyer answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC."
    inserts = [insert_statement(LeadEvent, EVENT_FIELDS, events)] if events else []
    inserts += [
        insert_statement(DeliveryAttempt, ATTEMPT_FIELDS, attempts[start : start + CHUNK_ROWS])
        for start in range(0, len(attempts), CHUNK_ROWS)
    ]
    # No savepoint of its own: it is all or nothing, within a caller's transaction too.
    with transaction.atomic(savepoint=False):
        # Only from pending: a result recorded twice (a retried task, or two entries that sent one
        # delivery) never sells the lead twice. A concurrent recorder's row lock is waited for, and
        # the row's new status seen. The inserts (and what the caller kept back) go in its round trip.
        updated = bulk_update_rows_if(
            [delivery for delivery, _, _ in first.values()],
            RECORDED_FIELDS,
            {"status": Delivery.Status.PENDING},
            before=[*take_deferred(), *inserts],
        )
        changed: dict[int, tuple[Delivery, Lead | None]] = {}
        for pk, (delivery, lead, before) in first.items():
            if pk in updated:
                changed[pk] = (delivery, lead)
            else:
                for name, value in zip(ANSWER_FIELDS, before, strict=True):
                    setattr(delivery, name, value)
        sold = [
            (delivery, lead)
            for delivery, lead in changed.values()
            if delivery.status == Delivery.Status.ACCEPTED and delivery.price is not None
        ]
        unloaded = [delivery.lead_id for delivery, lead in sold if lead is None]
        loaded = Lead.objects.select_related("offer").in_bulk(unloaded) if unloaded else {}
        sales = [(delivery, lead or loaded[delivery.lead_id]) for delivery, lead in sold]
        returned = _returned_while_sent([lead for _, lead in sales])
        ledger_post_sales(sales=sales)
        for lead in returned:
            # The buyer has the lead and its sale is booked, but the lead was returned while the post
            # was under way: reversed as the return reversed the rest (inside the offer's window).
            ledger_post_return(lead=lead)
        for destination_id, reason in disabled.items():
            DeliveryDestination.objects.filter(pk=destination_id).update(is_active=False, disabled_reason=reason)
    return settled


def _returned_while_sent(leads: list[Lead]) -> list[Lead]:
    """Of the leads just sold, those returned meanwhile. Their rows are locked until the sales commit, so
    a return under way is waited for and seen here, and a later one sees the sales and reverses them."""
    if not leads:
        return []
    statuses = dict(
        # NO KEY: a return's FOR UPDATE still waits for it, rows that only refer to the lead do not.
        Lead.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk__in={lead.pk for lead in leads})
        .order_by("pk")
        .values_list("pk", "status")
    )
    return list({lead.pk: lead for lead in leads if statuses.get(lead.pk) == LeadStatus.RETURNED}.values())


def _why_not_send(deliveries: list[Delivery]) -> dict[int, str]:
    """{delivery id: why it is not sent} (two queries for the lot). A retried or redelivered send is
    checked again: the lead may have been returned, sold to another buyer or put on the buyer's
    suppression list since the delivery was made."""
    placed: dict[int, set[int]] = defaultdict(set)
    for lead_id, pk in Delivery.objects.filter(
        lead_id__in={delivery.lead_id for delivery in deliveries}, status__in=COUNTED
    ).values_list("lead_id", "pk"):
        placed[lead_id].add(pk)
    # The buyer may have listed the person since the delivery was made (a retry, a redelivery).
    suppressed = suppressed_advertisers_by_lead(
        {delivery.lead_id: delivery.lead for delivery in deliveries}.values(),
        {delivery.destination.advertiser_id for delivery in deliveries},
    )
    blocked = {}
    for delivery in deliveries:
        lead = delivery.lead
        if lead.erased_at:
            blocked[delivery.pk] = "not sent: the person's data was erased"
        elif not lead.is_billable or lead.status == LeadStatus.RETURNED:
            blocked[delivery.pk] = "not sent: the lead was returned or is no longer deliverable"
        elif placed[delivery.lead_id] - {delivery.pk}:
            blocked[delivery.pk] = "not sent: the lead is already with another buyer"
        elif delivery.destination.advertiser_id in suppressed.get(delivery.lead_id, set()):
            blocked[delivery.pk] = "not sent: the lead is on the buyer's suppression list"
    return blocked


Prepared = tuple[Delivery, PartnerRequest]
Finished = tuple[OutboxEntry, Delivery, PartnerRequest, CallResult]


class DeliveryCall:
    """The "delivery" follow-up as a partner call: route the lead, send it, record the answer. A
    rejection, or a disabled buyer, sends the entry round again to the next buyer.

    A batch is prepared and recorded as a set: a few queries for all its entries, not per entry."""

    def prepare(self, entry: OutboxEntry) -> Prepared | None:
        [(_, ready)] = self.prepare_batch([entry])
        if isinstance(ready, Exception):
            raise ready
        return ready

    def record(self, entry: OutboxEntry, delivery: Delivery, request: PartnerRequest, result: CallResult) -> None:
        [(_, error)] = self.record_batch([(entry, delivery, request, result)])
        if error is not None:
            raise error

    def still_to_send(self, deliveries: list[Delivery]) -> set[Delivery]:
        """Of the prepared deliveries, those still pending, to an active buyer, of a lead neither erased
        nor returned (one query); the others go back to be prepared, and so checked, again."""
        # Read by the deliveries' ids alone and judged here: a filter on the status or on the lead let
        # the planner, with a new table's statistics, scan every pending delivery or lead instead.
        states = Delivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).values_list(
            "pk", "status", "destination__is_active", "lead__erased_at", "lead__status"
        )
        pending = {
            pk
            for pk, status, buyer_is_active, erased_at, lead_status in states.order_by()
            if status == Delivery.Status.PENDING
            and buyer_is_active
            and erased_at is None
            and lead_status != LeadStatus.RETURNED
        }
        return {delivery for delivery in deliveries if delivery.pk in pending}

    def prepare_batch(self, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, Prepared | None | Exception]]:
        ready: dict[int, Prepared | None | Exception] = {}
        wanted = {entry.payload["delivery"] for entry in entries if entry.payload.get("delivery")}
        known = Delivery.objects.select_related("destination").in_bulk(wanted) if wanted else {}
        deliveries: dict[int, Delivery] = {}
        unrouted: list[OutboxEntry] = []
        cleared: dict[int, dict[str, Any]] = {}
        for entry in entries:
            delivery = known.get(entry.payload.get("delivery"))
            if delivery is not None and delivery.status == Delivery.Status.REJECTED:
                cleared[entry.pk], delivery = {}, None  # the last buyer said no: route to the next
            if delivery is None:
                unrouted.append(entry)
            else:
                deliveries[entry.pk] = delivery
        _set_payloads(entries, cleared)
        routed_now, fresh = _route_batch(unrouted) if unrouted else ({}, set())
        for entry_pk, routed in routed_now.items():
            if isinstance(routed, Delivery):
                deliveries[entry_pk] = routed
            else:
                ready[entry_pk] = routed
        to_send = []
        for entry in entries:
            delivery = deliveries.get(entry.pk)
            if delivery is None:
                continue
            if delivery.status == Delivery.Status.ACCEPTED:
                ready[entry.pk] = None
            elif delivery.status == Delivery.Status.FAILED and not entry.payload.get("redeliver"):
                ready[entry.pk] = GiveUp(delivery.reason or "delivery failed")
            else:
                to_send.append((entry, delivery))
        if to_send:
            ready.update(self._requests(to_send, fresh))
        return [(entry, ready[entry.pk]) for entry in entries]

    def _requests(
        self, to_send: list[tuple[OutboxEntry, Delivery]], fresh: set[int]
    ) -> dict[int, Prepared | None | Exception]:
        ready: dict[int, Prepared | None | Exception] = {}
        unloaded = {delivery.lead_id for _, delivery in to_send if not Delivery.lead.is_cached(delivery)}
        leads = (
            Lead.objects.select_related("campaign", "offer", "traffic_source").defer(*NOT_DELIVERED).in_bulk(unloaded)
            if unloaded
            else {}
        )
        for _, delivery in to_send:
            if not Delivery.lead.is_cached(delivery):
                delivery.lead = leads[delivery.lead_id]
        earlier = [delivery for _, delivery in to_send if delivery.pk not in fresh]
        blocked = _why_not_send(earlier) if earlier else {}
        by_reason: dict[str, list[int]] = defaultdict(list)
        for pk, reason in blocked.items():
            by_reason[reason].append(pk)
        for reason, pks in by_reason.items():
            Delivery.objects.filter(pk__in=pks).update(
                status=Delivery.Status.FAILED, reason=reason, finished_at=timezone.now()
            )
        disabled, sendable = [], []
        for entry, delivery in to_send:
            if delivery.pk in blocked:
                ready[entry.pk] = None
            elif not delivery.destination.is_active:
                disabled.append((entry, delivery))
            else:
                sendable.append((entry, delivery))
        if disabled:
            _record_many(
                [
                    (delivery, SentRequest(Verdict(Outcome.REJECTED, reason=_disabled(delivery.destination))), None)
                    for _, delivery in disabled
                ]
            )
            _set_payloads([entry for entry, _ in disabled], {entry.pk: {} for entry, _ in disabled})
            for entry, delivery in disabled:
                destination = delivery.destination
                message = f"{destination.name}: {_disabled(destination)}; routing to the next buyer"
                ready[entry.pk] = RetryLater(message, delay=0)
        destinations = {delivery.destination_id: delivery.destination for _, delivery in sendable}
        signers = destination_signers(
            destination for destination in destinations.values() if destination.kind != DeliveryDestination.Kind.EMAIL
        )
        for entry, delivery in sendable:
            destination = destinations[delivery.destination_id]
            try:
                request = lead_request(
                    destination=destination,
                    lead=delivery.lead,
                    msg_id=delivery.webhook_id,
                    signer=signers.get(destination.pk),
                )
            except Exception as error:  # this entry ends with it; the batch goes on
                ready[entry.pk] = error
            else:
                ready[entry.pk] = (delivery, request)
        return ready

    def record_batch(self, finished: list[Finished]) -> list[tuple[OutboxEntry, Exception | None]]:
        outcomes = _record_many(
            [(delivery, sent_request(request, result), delivery.lead) for _, delivery, request, result in finished]
        )
        results: list[tuple[OutboxEntry, Exception | None]] = []
        cleared: dict[int, dict[str, Any]] = {}
        for (entry, delivery, _request, result), (outcome, delay) in zip(finished, outcomes, strict=True):
            name = delivery.destination.name
            if outcome == Outcome.REJECTED:
                cleared[entry.pk] = {}
                results.append((entry, RetryLater(f"{name} rejected the lead; routing to the next buyer", delay=0)))
                continue
            try:
                end_entry(outcome, delay, f"{name}: {delivery.reason or result.verdict.reason}")
            except (RetryLater, GiveUp) as ending:
                results.append((entry, ending))
            else:
                results.append((entry, None))
        _set_payloads([entry for entry, *_ in finished], cleared)
        return results


def _disabled(destination: DeliveryDestination) -> str:
    return f"destination disabled: {destination.disabled_reason}"


delivery_call = DeliveryCall()
delivery_outbox_batch = partner_calls_batch(delivery_call)


def delivery_outbox_handler(entry: OutboxEntry) -> None:
    """Route, send, record one entry; a rejection moves on to the next buyer, up to BUYERS_PER_RUN."""
    for _ in range(BUYERS_PER_RUN):
        try:
            run_partner_call(delivery_call, entry)
        except RetryLater as later:
            if later.delay != 0:
                raise
            continue  # rejected: the next buyer, now
        return
    raise RetryLater("rejected by several buyers; routing continues", delay=1)


# --- Staff actions ---------------------------------------------------------------------------------


@transaction.atomic
def deliveries_redeliver(*, deliveries: QuerySet[Delivery]) -> tuple[int, dict[int, str]]:
    """Send failed or rejected deliveries again to the same buyer, under the same webhook id; returns
    how many, and {delivery id: why not} for those the buyer's caps or credit refuse now.

    Not for a lead another buyer has (or is being sent), nor one returned or no longer sellable.
    """
    count = 0
    placed = Delivery.objects.filter(status__in=COUNTED).values("lead_id")
    retryable = list(
        deliveries.exclude(status__in=COUNTED)
        .exclude(lead_id__in=placed)
        # A post to a ping/post buyer answered a bid that has lapsed: the lead goes back to auction.
        .exclude(destination__kind=DeliveryDestination.Kind.PING_POST)
        .filter(lead__validity="valid", lead__is_duplicate=False, lead__is_test=False)
        .exclude(lead__status=LeadStatus.RETURNED)
        .select_related("lead", "destination")
    )
    refused = _redelivery_refusals(retryable, timezone.now())
    for delivery in retryable:
        if delivery.pk in refused:
            continue
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING, attempts=0, finished_at=None)
        outbox_enqueue(
            lead=delivery.lead, kinds=[OutboxEntry.Kind.DELIVERY], payload={"delivery": delivery.pk, "redeliver": True}
        )
        count += 1
    return count, refused


def _redelivery_refusals(deliveries: list[Delivery], now: datetime) -> dict[int, str]:
    """{delivery id: why not}: a buyer may have filled its route's cap or spent its credit since its
    delivery failed, and a redelivery keeps to them as routing does (in order, each counted as sent)."""
    routes = {
        route.pk: route
        for route in DeliveryRoute.objects.select_for_update().filter(
            pk__in={delivery.route_id for delivery in deliveries if delivery.route_id}
        )
    }
    usage = route_usage(routes, now)
    left = credit_left(
        {delivery.destination.advertiser_id for delivery in deliveries}, {delivery.currency for delivery in deliveries}
    )
    refused = {}
    for delivery in deliveries:
        route = routes.get(delivery.route_id or 0)
        this_hour, today = usage.get(route.pk, (0, 0)) if route else (0, 0)
        account = (delivery.destination.advertiser_id, delivery.currency)
        available, price = left.get(account), delivery.price or Decimal(0)
        if route and route.daily_cap is not None and today >= route.daily_cap:
            refused[delivery.pk] = "at its daily cap"
        elif route and route.hourly_cap is not None and this_hour >= route.hourly_cap:
            refused[delivery.pk] = "at its hourly cap"
        elif available is not None and price > available:
            refused[delivery.pk] = credit_refusal(available, delivery.currency)
        else:
            if route:
                usage[route.pk] = (this_hour + 1, today + 1)
            if available is not None:
                left[account] = available - price
    return refused


@transaction.atomic
def deliveries_route_next(*, deliveries: QuerySet[Delivery]) -> int:
    """Offer the leads of failed or rejected deliveries to the next buyer that has not had them."""
    leads = {
        d.lead_id: d.lead
        for d in deliveries.exclude(status__in=(Delivery.Status.ACCEPTED, Delivery.Status.PENDING)).select_related(
            "lead__offer"
        )
    }
    # An offer that sells by auction offers its leads again by auction (floor, consent, bids), never
    # to a fixed route at its fixed price.
    by_auction = [lead.pk for lead in leads.values() if lead.offer.sells_by_auction]
    for lead in leads.values():
        if lead.pk not in by_auction:
            outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.DELIVERY])
    if by_auction:
        from .auction import auctions_rerun  # the auction builds on this module

        auctions_rerun(leads=Lead.objects.filter(pk__in=by_auction))
    return len(leads)


def held_deliveries() -> QuerySet[OutboxEntry]:
    return OutboxEntry.objects.filter(
        kind=OutboxEntry.Kind.DELIVERY, status=OutboxEntry.Status.PENDING, payload__has_key="held"
    )


def deliveries_release_held(
    *, offer_id: int | None = None, entry_ids: list[int] | None = None, advertiser_id: int | None = None
) -> int:
    """Route held leads now (buyers, caps or credit changed, or staff ask) instead of at their next check.

    `advertiser_id`: the held leads of every offer that buyer has routes on."""
    held = held_deliveries()
    if offer_id is not None:
        held = held.filter(lead__offer_id=offer_id)
    if advertiser_id is not None:
        offers = DeliveryRoute.objects.filter(destination__advertiser_id=advertiser_id).values("offer_id")
        held = held.filter(lead__offer_id__in=offers)
    if entry_ids is not None:
        held = held.filter(pk__in=entry_ids)
    entries = list(held.values_list("pk", "kind"))
    OutboxEntry.objects.filter(pk__in=[pk for pk, _ in entries]).update(
        next_attempt_at=timezone.now(), dispatched_at=timezone.now()
    )
    transaction.on_commit(lambda: dispatch(entries))
    return len(entries)


def destination_set_auth_secret(*, destination: DeliveryDestination, secret: str) -> None:
    destination.auth_secret_encrypted = encrypt(secret)
    DeliveryDestination.objects.filter(pk=destination.pk).update(
        auth_secret_encrypted=destination.auth_secret_encrypted
    )

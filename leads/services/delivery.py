"""Delivery of leads to buyers: routing by priority, weight and caps; signed sends; retries; held queue.

The outbox entry of kind "delivery" is the unit of work. Its payload names the Delivery being sent
(once a buyer is chosen) or why the lead is held. A run routes the lead, sends it, and records the
answer; a rejection moves on to the next buyer, a temporary failure waits for the retry schedule.
"""

import base64
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from leadcrm.encryption import decrypt, encrypt

from ..models import (
    BuyerAccount,
    Delivery,
    DeliveryAttempt,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LeadEvent,
    LeadStatus,
    OutboxEntry,
)
from .answers import Outcome, Verdict
from .calls import (
    CallResult,
    PartnerRequest,
    attempt_row,
    end_entry,
    partner_calls_batch,
    perform,
    run_partner_call,
    settle,
)
from .delivery_payload import email_text, mapped_payload, request_body
from .ledger import buyer_balances, ledger_post_sale
from .outbox import GiveUp, RetryLater, dispatch, outbox_enqueue
from .signing import signature_headers

BUYERS_PER_RUN = 3  # rejections in a row before the run yields (each send can take its timeout)
RECHECK_UNROUTABLE = timedelta(hours=1)  # held for a reason other than caps: look again hourly
COUNTED = (Delivery.Status.PENDING, Delivery.Status.ACCEPTED)  # what uses up a buyer's cap


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


@dataclass
class RoutingChoice:
    route: DeliveryRoute | None
    held_reason: str = ""
    recheck_at: datetime | None = None


def choose_route(
    lead: Lead, routes: list[DeliveryRoute], now: datetime, out_of_credit: dict[int, str] | None = None
) -> RoutingChoice:
    """The first buyer in priority order with room under its caps and its credit limit; weighted among
    equal priorities. `out_of_credit`: why routes whose buyer cannot pay for the lead are left out."""
    if not routes:
        return RoutingChoice(None, "no buyer left for this offer", now + RECHECK_UNROUTABLE)
    out_of_credit = out_of_credit or {}

    def refusal(route: DeliveryRoute) -> str:
        return route.refusal(lead) or out_of_credit.get(route.pk, "")

    accepting = [route for route in routes if not refusal(route)]
    if not accepting:
        refusals = "; ".join(f"{route.destination.name}: {refusal(route)}" for route in routes)
        return RoutingChoice(None, f"no buyer takes it ({refusals})"[:300], now + RECHECK_UNROUTABLE)
    capped = [route.pk for route in accepting if route.hourly_cap is not None or route.daily_cap is not None]
    usage = route_usage(capped, now) if capped else {}
    hour, day = period_starts(now)
    resets = []
    with_room = []
    for route in accepting:
        this_hour, today = usage.get(route.pk, (0, 0))
        if route.daily_cap is not None and today >= route.daily_cap:
            resets.append(timezone.localtime(day + timedelta(hours=26)).replace(hour=0))
        elif route.hourly_cap is not None and this_hour >= route.hourly_cap:
            resets.append(hour + timedelta(hours=1))
        else:
            with_room.append(route)
    for _priority, same_priority in groupby(with_room, key=lambda route: route.priority):
        group = list(same_priority)
        return RoutingChoice(random.choices(group, weights=[route.weight for route in group])[0])  # noqa: S311
    return RoutingChoice(None, "every buyer is at its cap", min(resets))


def credit_refusals(
    lead: Lead, routes: list[DeliveryRoute], prices: dict[int, Decimal] | None = None
) -> dict[int, str]:
    """{route id: why not} for routes whose buyer's account cannot pay this lead's price.

    Locks the accounts (after the lead and the routes, always in that order), so two leads routed at
    once cannot both spend a buyer's last credit. A balance is the buyer's ledger added up; a price
    already promised to a pending delivery counts as spent (a delivery is pending or its sale is in
    the ledger, never both nor neither). Buyers without an account in the offer's currency have no
    limit. `prices`: {route id: price} where the price is not the route's own (an auction's bid)."""
    prices = prices or {}
    currency = lead.offer.currency
    advertiser_ids = {route.destination.advertiser_id for route in routes}
    accounts = {
        account.advertiser_id: account
        for account in BuyerAccount.objects.select_for_update()
        .filter(advertiser_id__in=advertiser_ids, currency=currency)
        .order_by("pk")
    }
    if not accounts:
        return {}
    promised = dict(
        Delivery.objects.filter(
            status=Delivery.Status.PENDING, destination__advertiser_id__in=list(accounts), currency=currency
        )
        .values_list("destination__advertiser_id")
        .annotate(total=Sum("price"))
        .order_by()
    )
    balances = buyer_balances(accounts, currency)
    refusals = {}
    for route in routes:
        account = accounts.get(route.destination.advertiser_id)
        if account is None:
            continue
        balance = balances.get(account.advertiser_id) or 0
        available = balance + account.credit_limit - (promised.get(account.advertiser_id) or 0)
        price = prices[route.pk] if route.pk in prices else route.price_for(lead)
        if price > available:
            refusals[route.pk] = f"at its credit limit ({available:.2f} {currency} left)"
    return refusals


def _set_payload(entry: OutboxEntry, payload: dict[str, Any]) -> None:
    entry.payload = payload
    OutboxEntry.objects.filter(pk=entry.pk).update(payload=payload)


def _route(entry: OutboxEntry) -> Delivery | None:
    """Choose a buyer and create the Delivery, or say why the lead waits. None: nothing to deliver."""
    now = timezone.now()
    with transaction.atomic():
        # Locking the lead, then its offer's routes (always in that order), keeps two workers from
        # routing one lead twice or filling one cap past its limit.
        lead = (
            Lead.objects.select_for_update(of=("self",))
            .select_related("campaign", "offer", "traffic_source")
            .get(pk=entry.lead_id)
        )
        if lead.erased_at:
            _set_payload(entry, {"skipped": "not deliverable: the person's data was erased"})
            return None
        if not lead.is_billable or lead.status == LeadStatus.RETURNED:
            _set_payload(entry, {"skipped": "not deliverable (invalid, duplicate, test or returned)"})
            return None
        earlier = list(Delivery.objects.filter(lead=lead).values_list("pk", "destination_id", "status"))
        # A lead is sold once: another entry (a redelivery, a "route to next buyer", a retried
        # row) may have placed it already. Accepted: nothing to do. Pending: this entry takes
        # that send over, so it is never left without an entry to finish it.
        if any(status == Delivery.Status.ACCEPTED for _, _, status in earlier):
            _set_payload(entry, {"skipped": "already delivered to a buyer"})
            return None
        pending = next((pk for pk, _, status in earlier if status == Delivery.Status.PENDING), None)
        if pending is not None:
            _set_payload(entry, {"delivery": pending})
            return Delivery.objects.select_related("destination").get(pk=pending)
        tried = [destination_id for _, destination_id, _ in earlier]
        routes = list(
            DeliveryRoute.objects.select_for_update(of=("self",))
            .filter(offer_id=lead.offer_id, is_active=True, destination__is_active=True)
            .exclude(destination_id__in=tried)
            .exclude(destination__kind=DeliveryDestination.Kind.PING_POST)  # they buy by auction only
            .select_related("destination")
            .prefetch_related("prices")
            .order_by("priority", "id")
        )
        for route in routes:
            route.offer = lead.offer  # priced with the lead's offer already loaded
        choice = choose_route(lead, routes, now, credit_refusals(lead, routes) if routes else None)
        if choice.route is None:
            if entry.payload.get("held") != choice.held_reason:
                LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.DELIVERY, data={"held": choice.held_reason})
            _set_payload(entry, {"held": choice.held_reason})
        else:
            delivery = Delivery.objects.create(
                lead=lead,
                destination=choice.route.destination,
                route=choice.route,
                price=choice.route.price_for(lead),
                currency=lead.offer.currency,
            )
            delivery.lead = lead  # sent with the lead already loaded
            _set_payload(entry, {"delivery": delivery.pk})
            return delivery
    recheck_at = choice.recheck_at or now + RECHECK_UNROUTABLE
    raise RetryLater(f"held: {choice.held_reason}", delay=max((recheck_at - now).total_seconds(), 1))


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


def lead_request(
    *, destination: DeliveryDestination, lead: Lead, msg_id: str, extra: dict[str, Any] | None = None
) -> PartnerRequest:
    """The call that sends this lead to this destination: a signed POST, or an email to its inbox.
    `extra`: fields sent beside the lead's (an auction's bid id)."""
    payload = {**mapped_payload(lead, destination.field_mapping), **(extra or {})}
    if destination.kind == DeliveryDestination.Kind.EMAIL:
        subject, text = email_text(lead, payload)
        message = EmailMessage(subject, text, to=destination.email_to, headers={"X-Leadcrm-Delivery-Id": msg_id})
        return PartnerRequest(url="mailto:" + ",".join(destination.email_to), email=message, body=text.encode())
    body, content_type = request_body(destination, payload)
    secrets = [secret for secret in destination.secrets.all() if secret.revoked_at is None]
    if not secrets:
        reason = "no signing secret: create one on the destination's page (New signing secret) and give it to the buyer"
        return PartnerRequest(url=destination.url, refusal=reason)
    headers = {
        **destination.headers,
        "Content-Type": content_type,
        **_auth_header(destination),
        **signature_headers(secrets=secrets, msg_id=msg_id, body=body, timestamp=int(time.time())),
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


def _record(delivery: Delivery, sent: SentRequest, lead: Lead | None = None) -> tuple[str, float | None]:
    """Write the attempt and the delivery's new state; returns (outcome, seconds until retry)."""
    verdict = sent.verdict
    attempts = delivery.attempts + 1
    outcome, delay = settle(verdict, attempts)
    status = {
        Outcome.ACCEPTED: Delivery.Status.ACCEPTED,
        Outcome.REJECTED: Delivery.Status.REJECTED,
        Outcome.FAILED: Delivery.Status.FAILED,
        Outcome.RETRY: Delivery.Status.PENDING,
    }[outcome]
    now = timezone.now()
    with transaction.atomic():
        # Only from pending: a result recorded twice (a retried task) never sells the lead twice.
        changed = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
            status=status,
            attempts=attempts,
            last_status_code=sent.status_code,
            reason=verdict.reason,
            buyer_reference=verdict.reference or delivery.buyer_reference,
            finished_at=None if status == Delivery.Status.PENDING else now,
        )
        DeliveryAttempt.objects.bulk_create(
            [
                attempt_row(
                    url=sent.url,
                    result=CallResult(verdict, sent.status_code, sent.latency_ms, sent.response, sent.error),
                    outcome=outcome,
                    delivery=delivery,
                )
            ]
        )
        if changed and status == Delivery.Status.ACCEPTED and delivery.price is not None:
            if lead is None:
                lead = Lead.objects.select_related("offer").get(pk=delivery.lead_id)
            ledger_post_sale(delivery=delivery, lead=lead)
        if verdict.disable_destination:
            DeliveryDestination.objects.filter(pk=delivery.destination_id).update(
                is_active=False, disabled_reason=f"The buyer answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC."
            )
        if status != Delivery.Status.PENDING:
            LeadEvent.objects.create(
                lead_id=delivery.lead_id,
                kind=LeadEvent.Kind.DELIVERY,
                data={
                    "buyer": delivery.destination.name,
                    "outcome": status,
                    "reason": verdict.reason,
                    "webhook_id": delivery.webhook_id,
                },
            )
    delivery.status, delivery.attempts = status, attempts
    return outcome, delay


def _lead_of(delivery: Delivery) -> Lead:
    lead = delivery.lead if Delivery.lead.is_cached(delivery) else None
    if lead is None or not Lead.campaign.is_cached(lead):
        lead = Lead.objects.select_related("campaign", "offer", "traffic_source").get(pk=delivery.lead_id)
    return lead


def delivery_send(*, delivery: Delivery) -> tuple[str, float | None]:
    destination = delivery.destination
    if not destination.is_active:
        sent = SentRequest(Verdict(Outcome.REJECTED, reason=f"destination disabled: {destination.disabled_reason}"))
        return _record(delivery, sent)
    lead = _lead_of(delivery)
    return _record(delivery, send_lead(destination=destination, lead=lead, msg_id=delivery.webhook_id), lead)


def _why_not_send(delivery: Delivery) -> str:
    """A retried or redelivered send is checked again: the lead may have been returned, or sold
    to another buyer, since the delivery was made."""
    lead = Lead.objects.only("validity", "is_duplicate", "is_test", "status", "erased_at").get(pk=delivery.lead_id)
    if lead.erased_at:
        return "not sent: the person's data was erased"
    if not lead.is_billable or lead.status == LeadStatus.RETURNED:
        return "not sent: the lead was returned or is no longer deliverable"
    if Delivery.objects.filter(lead_id=delivery.lead_id, status__in=COUNTED).exclude(pk=delivery.pk).exists():
        return "not sent: the lead is already with another buyer"
    return ""


class DeliveryCall:
    """The "delivery" follow-up as a partner call: route the lead, send it, record the answer. A
    rejection, or a disabled buyer, sends the entry round again to the next buyer."""

    def prepare(self, entry: OutboxEntry) -> tuple[Delivery, PartnerRequest] | None:
        delivery_id = entry.payload.get("delivery")
        delivery = (
            Delivery.objects.select_related("destination").filter(pk=delivery_id).first() if delivery_id else None
        )
        if delivery is not None and delivery.status == Delivery.Status.REJECTED:
            _set_payload(entry, {})  # the last buyer said no: route to the next
            delivery = None
        if delivery is None:
            delivery = _route(entry)
            if delivery is None:
                return None
        if delivery.status == Delivery.Status.ACCEPTED:
            return None
        if delivery.status == Delivery.Status.FAILED and not entry.payload.get("redeliver"):
            raise GiveUp(delivery.reason or "delivery failed")
        blocked = _why_not_send(delivery)
        if blocked:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.FAILED, reason=blocked, finished_at=timezone.now()
            )
            return None
        destination = delivery.destination
        if not destination.is_active:
            reason = f"destination disabled: {destination.disabled_reason}"
            _record(delivery, SentRequest(Verdict(Outcome.REJECTED, reason=reason)))
            _set_payload(entry, {})
            raise RetryLater(f"{destination.name}: {reason}; routing to the next buyer", delay=0)
        delivery.lead = _lead_of(delivery)
        return delivery, lead_request(destination=destination, lead=delivery.lead, msg_id=delivery.webhook_id)

    def record(self, entry: OutboxEntry, delivery: Delivery, request: PartnerRequest, result: CallResult) -> None:
        outcome, delay = _record(delivery, sent_request(request, result), delivery.lead)
        if outcome == Outcome.REJECTED:
            _set_payload(entry, {})
            raise RetryLater(f"{delivery.destination.name} rejected the lead; routing to the next buyer", delay=0)
        end_entry(outcome, delay, f"{delivery.destination.name}: {delivery.reason or result.verdict.reason}")


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
def deliveries_redeliver(*, deliveries: QuerySet[Delivery]) -> int:
    """Send failed or rejected deliveries again to the same buyer, under the same webhook id.

    Not for a lead another buyer has (or is being sent), nor one returned or no longer sellable.
    """
    count = 0
    placed = Delivery.objects.filter(status__in=COUNTED).values("lead_id")
    retryable = (
        deliveries.exclude(status__in=COUNTED)
        .exclude(lead_id__in=placed)
        .filter(lead__validity="valid", lead__is_duplicate=False, lead__is_test=False)
        .exclude(lead__status=LeadStatus.RETURNED)
        .select_related("lead")
    )
    for delivery in retryable:
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING, attempts=0, finished_at=None)
        outbox_enqueue(
            lead=delivery.lead, kinds=[OutboxEntry.Kind.DELIVERY], payload={"delivery": delivery.pk, "redeliver": True}
        )
        count += 1
    return count


@transaction.atomic
def deliveries_route_next(*, deliveries: QuerySet[Delivery]) -> int:
    """Offer the leads of failed or rejected deliveries to the next buyer that has not had them."""
    leads = {
        d.lead_id: d.lead for d in deliveries.exclude(status__in=(Delivery.Status.ACCEPTED, Delivery.Status.PENDING))
    }
    for lead in leads.values():
        outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.DELIVERY])
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

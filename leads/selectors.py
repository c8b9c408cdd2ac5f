"""Reads of the lead domain, already scoped to who asks."""

import datetime
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import Advertiser, Campaign

from .models import (
    BUYER_BALANCE_SIGN,
    OPEN_STATUSES,
    SUPPLIER_BALANCE_SIGN,
    UNASSIGNED_QUEUE,
    BuyerAccount,
    BuyerSuppression,
    Delivery,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LedgerEntry,
    Partner,
)
from .services.contact_hashes import email_hash, phone_hash
from .services.ledger import buyer_balance, buyer_balance_change, supplier_balance
from .services.normalisation import normalise_phone


def can_see_all_leads(user: User | AnonymousUser) -> bool:
    return user.is_superuser or user.has_perm("leads.view_all_leads")


def lead_list(*, user: User | AnonymousUser) -> QuerySet[Lead]:
    """Leads the user may see: everyone's for managers and marketing; a rep's own plus the
    unassigned queue of workable leads for sales reps."""
    leads = Lead.objects.select_related("campaign", "traffic_source", "assigned_to")
    if can_see_all_leads(user):
        return leads
    if not user.has_perm("leads.view_lead"):
        return leads.none()
    return leads.filter(Q(assigned_to=user) | UNASSIGNED_QUEUE)


def lead_search(leads: QuerySet[Lead], term: str) -> QuerySet[Lead]:
    """Index-friendly search: exact email, phone or click id; names by their start."""
    term = term.strip()
    if not term:
        return leads
    if "@" in term:
        return leads.filter(email=term.lower())
    digits = "".join(ch for ch in term if ch.isdigit())
    if digits and len(digits) >= 6 and len(digits) >= len(term.replace(" ", "")) - 3:
        # "+1 650…" is an exact, indexed match; a local "650 555…" matches the number's end.
        phone, valid = normalise_phone(term if term.startswith("+") else "+" + digits, "")
        local = Q(phone__endswith=digits[-9:]) if not term.startswith("+") else Q()
        # Many traffic sources send numeric click ids, which look like phone numbers.
        return leads.filter((Q(phone=phone) if valid else Q(pk__in=[])) | local | Q(click_id=term))
    return leads.filter(Q(click_id=term) | Q(first_name__istartswith=term) | Q(last_name__istartswith=term))


def can_work_lead(*, user: User | AnonymousUser, lead: Lead) -> bool:
    """Who may change a lead: managers (and superusers) any; a rep only their own."""
    if user.is_superuser or user.has_perm("leads.assign_lead"):
        return True
    return user.has_perm("leads.change_lead") and lead.assigned_to_id == user.pk


def follow_ups_due(*, user: User, limit: int = 20) -> QuerySet[Lead]:
    """The user's open leads whose follow-up date is today or overdue, oldest first."""
    return (
        Lead.objects.filter(assigned_to=user, status__in=OPEN_STATUSES, next_follow_up__lte=timezone.localdate())
        .select_related("campaign")
        .order_by("next_follow_up", "created_at")[:limit]
    )


def sales_queue(*, user: User, limit: int = 20) -> QuerySet[Lead]:
    """The rep's open leads: those with a follow-up first (soonest first), then the best scored."""
    return (
        Lead.objects.filter(assigned_to=user, status__in=OPEN_STATUSES)
        .select_related("campaign")
        .order_by(F("next_follow_up").asc(nulls_last=True), "-score", "created_at")[:limit]
    )


def sales_queue_counts(*, user: User) -> dict[str, int]:
    """How many open leads the rep holds, and how many wait unassigned for anyone to claim: one query."""
    return Lead.objects.aggregate(
        mine=Count("pk", filter=Q(assigned_to=user, status__in=OPEN_STATUSES)),
        unassigned=Count("pk", filter=UNASSIGNED_QUEUE),
    )


def escalated_leads(*, limit: int = 20) -> QuerySet[Lead]:
    """Qualified leads nobody has contacted in time, for managers."""
    return (
        Lead.objects.filter(escalated_at__isnull=False, first_contacted_at__isnull=True, status__in=OPEN_STATUSES)
        .select_related("campaign", "assigned_to")
        .order_by("escalated_at")[:limit]
    )


def _sold_to(partner: Partner) -> Q:
    """The leads delivered to (and accepted by) the buyer's advertiser; nothing for a non-buyer."""
    if not (partner.is_buyer and partner.advertiser_id):
        return Q(pk__in=[])
    delivered = Delivery.objects.filter(
        status=Delivery.Status.ACCEPTED, destination__advertiser_id=partner.advertiser_id
    ).values("lead_id")
    return Q(pk__in=delivered)


def lead_list_for_buyer(*, partner: Partner) -> QuerySet[Lead]:
    """The only leads a buyer may report outcomes on."""
    return Lead.objects.filter(_sold_to(partner))


def lead_list_for_partner(*, partner: Partner) -> QuerySet[Lead]:
    """A supplier's own leads; for a buyer, the leads delivered to its advertiser."""
    visible = _sold_to(partner)
    if partner.is_supplier:
        visible |= Q(partner=partner)
    return Lead.objects.filter(visible).select_related("campaign", "duplicate_of")


def lead_list_for_api(*, user: Any) -> QuerySet[Lead]:
    """An API caller's leads: a partner's (its principal carries `.partner`) or a staff user's."""
    if user is None:  # schema generation inspects views without a caller
        return Lead.objects.none()
    partner = getattr(user, "partner", None)
    if partner is not None:
        return lead_list_for_partner(partner=partner)
    return lead_list(user=user).select_related("duplicate_of")


def campaigns_for_api(*, user: Any) -> QuerySet[Campaign]:
    campaigns = Campaign.objects.select_related("traffic_source", "offer")
    partner = getattr(user, "partner", None)
    return campaigns.filter(partners=partner) if partner is not None else campaigns


def statement(
    *,
    currency: str,
    date_from: datetime.date,
    date_to: datetime.date,
    advertiser: Advertiser | None = None,
    partner: Partner | None = None,
) -> dict[str, Any]:
    """A buyer's or a supplier's statement for a period (days in TIME_ZONE, by when entries were booked):
    the opening balance, every entry with the balance after it, and the closing balance.

    A buyer's balance is what it paid in less what it was charged (negative: it owes us); a supplier's
    is what we owe it. Both come from the ledger alone, so they reconcile with it to the cent."""
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    if advertiser is not None:
        signs, opening = BUYER_BALANCE_SIGN, buyer_balance(advertiser.pk, currency, before=start)
        entries = LedgerEntry.objects.filter(advertiser=advertiser)
        name = advertiser.name
    elif partner is not None:
        signs, opening = SUPPLIER_BALANCE_SIGN, supplier_balance(partner.pk, currency, before=start)
        entries = LedgerEntry.objects.filter(partner=partner)
        name = partner.name
    else:
        raise ValueError("A statement is an advertiser's or a partner's.")
    entries = (
        entries.filter(currency=currency, kind__in=list(signs), created_at__gte=start, created_at__lt=end)
        .select_related("lead", "campaign")
        .order_by("created_at", "id")
    )
    lines: list[dict[str, Any]] = []
    balance = opening
    for entry in entries:
        change = signs[entry.kind] * entry.amount
        balance += change
        lines.append({"entry": entry, "change": change, "balance": balance})
    payable = None
    if partner is not None:
        # Payouts whose return window has passed, less what was reversed or paid: what may be paid now.
        payable = supplier_balance(partner.pk, currency, before=end, payable_by=timezone.now())
    return {
        "name": name,
        "currency": currency,
        "date_from": date_from,
        "date_to": date_to,
        "opening": opening,
        "lines": lines,
        "closing": balance,
        "payable": payable,
    }


def buyer_accounts_with_balance(queryset: QuerySet[BuyerAccount] | None = None) -> QuerySet[BuyerAccount]:
    """Accounts with `balance`: their buyer's ledger in their currency, added up in the same query."""
    queryset = BuyerAccount.objects.all() if queryset is None else queryset
    entries = (
        LedgerEntry.objects.filter(
            advertiser_id=OuterRef("advertiser_id"), currency=OuterRef("currency"), kind__in=BUYER_BALANCE_SIGN
        )
        .order_by()
        .values("advertiser_id")
        .annotate(total=Sum(buyer_balance_change()))
        .values("total")
    )
    money: DecimalField[Decimal, Decimal] = DecimalField(max_digits=20, decimal_places=4)
    return queryset.annotate(
        balance=Coalesce(Subquery(entries, output_field=money), Value(Decimal("0")), output_field=money)
    )


# --- Buyers' suppression lists -------------------------------------------------------------------


def lead_contact_hashes(lead: Lead) -> dict[str, str]:
    """{kind: hash} of the lead's email and phone, hashed as the audience exports hash them."""
    hashes = {
        BuyerSuppression.Kind.EMAIL: email_hash(lead.email),
        BuyerSuppression.Kind.PHONE: phone_hash(lead.phone, lead.country),
    }
    return {str(kind): value for kind, value in hashes.items() if value}


def suppressed_advertiser_ids(lead: Lead, advertiser_ids: Iterable[int]) -> set[int]:
    """Which of these buyers (advertisers) have the lead's email or phone on their suppression list.
    Every way of choosing a buyer for a lead (fixed routes, an auction's pings) asks this, or the
    batch form below, before offering the lead to anyone."""
    return suppressed_advertisers_by_lead([lead], advertiser_ids).get(lead.pk, set())


def suppressed_advertisers_by_lead(leads: Iterable[Lead], advertiser_ids: Iterable[int]) -> dict[int | None, set[int]]:
    """{lead id: the buyers among these that have its email or phone on their suppression list}.

    One query on the list's unique (buyer, kind, hash) index for the whole batch, a probe per buyer
    and contact, so it costs the same at a million hashes per buyer as at ten."""
    wanted = list(set(advertiser_ids))
    if not wanted:
        return {}
    hashes_by_lead = {lead.pk: lead_contact_hashes(lead) for lead in leads}
    kinds = {kind for hashes in hashes_by_lead.values() for kind in hashes}
    values = {value for hashes in hashes_by_lead.values() for value in hashes.values()}
    if not values:
        return {}
    # IN lists on all three columns of the index (rather than an OR per kind), which every database
    # answers with index probes; a row of one kind matching another kind's hash is left out below.
    rows = (
        BuyerSuppression.objects.filter(advertiser_id__in=wanted, kind__in=list(kinds), hash__in=list(values))
        .values_list("advertiser_id", "kind", "hash")
        .order_by()
    )
    listed: dict[tuple[str, str], set[int]] = defaultdict(set)
    for advertiser_id, kind, value in rows:
        listed[kind, value].add(advertiser_id)
    return {
        lead_id: {advertiser for contact in hashes.items() for advertiser in listed.get(contact, ())}
        for lead_id, hashes in hashes_by_lead.items()
    }


def destination_suppresses(lead: Lead, destination: DeliveryDestination) -> bool:
    """Whether the destination's buyer keeps this lead out (one indexed query)."""
    return bool(suppressed_advertiser_ids(lead, [destination.advertiser_id]))


def suppression_counts(*, advertiser_id: int) -> dict[str, int]:
    """{"email": n, "phone": n} on the buyer's list, counted on its index."""
    rows = (
        BuyerSuppression.objects.filter(advertiser_id=advertiser_id)
        .values_list("kind")
        .annotate(total=Count("*"))  # read from the (buyer, kind, hash) index alone
        .order_by()
    )
    counts = {str(kind): 0 for kind in BuyerSuppression.Kind.values}
    counts.update({kind: total for kind, total in rows})
    return counts


# --- Auctions ------------------------------------------------------------------------------------


def auction_eligible_destinations(lead: Lead, *, now: datetime.datetime | None = None) -> list[DeliveryRoute]:
    """The buyers an auction of this lead asks, each by its route on the lead's offer: ping/post
    buyers (pinged) and fixed-price buyers (taking part at their price), active, taking the lead's
    country and type, with room under their caps, that have not had this lead and whose advertiser
    has not bought it. Credit is checked when a bid wins, at that bid's price.

    Every filter on who may be offered a lead goes here, once (a buyer's suppression list too)."""
    from .services.delivery import COUNTED, route_usage

    now = now or timezone.now()
    had = Delivery.objects.filter(lead_id=lead.pk).values("destination_id")
    owners = Delivery.objects.filter(lead_id=lead.pk, status__in=COUNTED).values("destination__advertiser_id")
    routes = list(
        DeliveryRoute.objects.filter(offer_id=lead.offer_id, is_active=True, destination__is_active=True)
        .exclude(destination_id__in=had)
        .exclude(destination__advertiser_id__in=owners)
        .select_related("destination__advertiser")
        .prefetch_related("prices", "destination__secrets")
        .order_by("priority", "id")
    )
    suppressed = suppressed_advertiser_ids(lead, {route.destination.advertiser_id for route in routes})
    accepting = [
        route for route in routes if not route.refusal(lead) and route.destination.advertiser_id not in suppressed
    ]
    capped = [route.pk for route in accepting if route.hourly_cap is not None or route.daily_cap is not None]
    usage = route_usage(capped, now) if capped else {}
    with_room = []
    for route in accepting:
        this_hour, today = usage.get(route.pk, (0, 0))
        if route.daily_cap is not None and today >= route.daily_cap:
            continue
        if route.hourly_cap is not None and this_hour >= route.hourly_cap:
            continue
        route.offer = lead.offer  # priced with the lead's offer already loaded
        with_room.append(route)
    return with_room

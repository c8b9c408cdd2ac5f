"""The money ledger: every sale, return, commission, supplier payout, media spend and payment is one
append-only LedgerEntry, posted in the transaction of the event that caused it.

Each entry's key names its event, so posting the same event twice (a retried task, a job run twice)
adds nothing. Corrections are new entries: a re-imported day of spend posts the difference.
"""

import datetime
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, DecimalField, F, Q, QuerySet, Sum, When
from django.utils import timezone

from campaigns.models import Advertiser, DailyStat
from leadcrm.bulk import bulk_insert_rows, instance_builder
from leadcrm.config_cache import cached
from leadcrm.errors import InvalidInput

from ..models import (
    BUYER_BALANCE_SIGN,
    SUPPLIER_BALANCE_SIGN,
    Delivery,
    Lead,
    LedgerEntry,
    Partner,
    Qualification,
    SupplierPayout,
    SupplierPing,
)
from ..signals import ledger_posted

K = LedgerEntry.Kind
REVERSALS = {K.LEAD_SOLD: K.LEAD_RETURNED, K.SALE_COMMISSION: K.SALE_REVERSED, K.PAYOUT_EARNED: K.PAYOUT_REVERSED}


def ledger_post(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """Insert the entries whose key is new (one statement, unless some were posted before); returns those
    posted. Balances are added up from the entries when needed, never kept beside them."""
    if not entries:
        return []
    if connection.vendor == "postgresql":
        # ON CONFLICT DO NOTHING: no savepoint to roll back to, one statement whatever was posted before.
        posted = bulk_insert_rows(entries, skip_conflicts_on="key")
    else:
        posted = _post_each_new(entries)
    if posted:
        ledger_posted.send(sender=LedgerEntry, entries=posted)
    return posted


def _post_each_new(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """`ledger_post`'s insert where a conflict cannot be skipped in the statement: all at once, else
    one at a time, each in a savepoint."""
    try:
        with transaction.atomic():
            bulk_insert_rows(entries)
        posted = entries
    except IntegrityError:
        # Some were posted before (a job or task that ran twice): keep only the new ones.
        posted = []
        for entry in entries:
            try:
                with transaction.atomic():
                    entry.save()
            except IntegrityError:
                continue
            posted.append(entry)
    return posted


def money_day(lead: Lead) -> datetime.date:
    """The day a lead's money counts for in reports: the day it was captured (in TIME_ZONE), so a
    campaign's revenue and cost stand beside the leads that earned them."""
    return timezone.localdate(lead.created_at)


@functools.cache
def _new_entry() -> Callable[..., LedgerEntry]:
    return instance_builder(LedgerEntry)


def _lead_entry(lead: Lead, **fields: Any) -> LedgerEntry:
    """An entry of the lead's money (`fields` by attribute name: `delivery_id`), built positionally: a
    delivery batch posts one a lead."""
    entry = _new_entry()(
        lead_id=lead.pk,
        day=money_day(lead),
        campaign_id=lead.campaign_id,
        offer_id=lead.offer_id,
        traffic_source_id=lead.traffic_source_id,
        **fields,
    )
    entry.lead = lead  # what receivers of ledger_posted read the lead's place from
    return entry


def return_deadline(lead: Lead) -> datetime.datetime:
    return lead.created_at + datetime.timedelta(days=lead.offer.return_window_days)


def _payout_entry(lead: Lead, terms: tuple[Decimal, str]) -> LedgerEntry:
    amount, currency = terms
    return _lead_entry(
        lead,
        key=f"payout:{lead.pk}",
        kind=K.PAYOUT_EARNED,
        amount=-amount,
        currency=currency,
        partner_id=lead.partner_id,
        payable_at=return_deadline(lead),
    )


def _payout_terms(lead: Lead, *bases: str, ping: SupplierPing | None = None) -> tuple[Decimal, str] | None:
    """(amount, currency) the lead's supplier earns if it earns on one of `bases`: the price of the
    inbound ping the lead was bought by, else the supplier's payout on the campaign."""
    partner_id = lead.partner_id
    if partner_id is None or lead.is_test:
        return None
    if ping is not None and ping.price is not None:
        return (ping.price, ping.currency) if ping.basis in bases else None
    # A supplier's active payouts on the campaign, per process until payouts change (every capture reads them).
    payouts = cached(
        "supplier-payouts",
        (partner_id, lead.campaign_id),
        lambda: list(
            SupplierPayout.objects.filter(partner_id=partner_id, campaign_id=lead.campaign_id, is_active=True)
        ),
    )
    payout = next((payout for payout in payouts if payout.basis in bases), None)
    return (payout.amount, payout.currency) if payout else None


def ledger_post_capture(*, lead: Lead, ping: SupplierPing | None = None) -> list[LedgerEntry]:
    """A supplier's payout for a lead that earns it by being valid (or qualified), at capture; at the
    pinged price for a lead bought by an inbound ping."""
    if not lead.is_billable:
        return []
    bases = [SupplierPayout.Basis.VALID]
    if lead.qualification == Qualification.QUALIFIED:
        bases.append(SupplierPayout.Basis.QUALIFIED)
    terms = _payout_terms(lead, *bases, ping=ping)
    return ledger_post([_payout_entry(lead, terms)] if terms else [])


def ledger_post_sale(*, delivery: Delivery, lead: Lead) -> list[LedgerEntry]:
    """A buyer accepted the lead: the sale at the delivery's price, and a payout earned by a sold lead."""
    return ledger_post_sales(sales=[(delivery, lead)])


def ledger_post_sales(*, sales: Iterable[tuple[Delivery, Lead]]) -> list[LedgerEntry]:
    """Many accepted deliveries (a batch's) in one insert: each sale and the payouts sold leads earn."""
    sales = list(sales)
    # A supplier's lead may have been bought by a ping whose price (and basis) hold over its payout's.
    pinged = [lead.pk for _, lead in sales if lead.partner_id and not lead.is_test]
    pings = {ping.lead_id: ping for ping in SupplierPing.objects.filter(lead_id__in=pinged)} if pinged else {}
    entries = []
    for delivery, lead in sales:
        entries.append(
            _lead_entry(
                lead,
                key=f"sold:{delivery.pk}",
                kind=K.LEAD_SOLD,
                amount=delivery.price,
                currency=delivery.currency,
                delivery_id=delivery.pk,
                advertiser_id=delivery.destination.advertiser_id,
            )
        )
        terms = _payout_terms(lead, SupplierPayout.Basis.SOLD, ping=pings.get(lead.pk))
        if terms:
            entries.append(_payout_entry(lead, terms))
    return ledger_post(entries)


def sale_commission(lead: Lead) -> tuple[Decimal, str]:
    """What a sale earns us: the amount reported with it (an advertiser's postback payout, a buyer's
    reported commission, our own rep's sale), else the offer's payout per sale."""
    if lead.sale_amount:
        return lead.sale_amount, lead.sale_currency or lead.offer.currency
    return lead.offer.payout_per_sale, lead.offer.currency


def ledger_post_sale_commission(*, lead: Lead, advertiser_id: int | None = None) -> list[LedgerEntry]:
    """The commission of a won lead, owed by the advertiser that reported the sale (a buyer's, or the
    one whose postback it was), else by the offer's."""
    if lead.is_test:
        return []
    amount, currency = sale_commission(lead)
    if not amount:
        return []
    entry = _lead_entry(
        lead,
        key=f"commission:{lead.pk}",
        kind=K.SALE_COMMISSION,
        amount=amount,
        currency=currency,
        advertiser_id=advertiser_id or lead.offer.advertiser_id,
    )
    return ledger_post([entry])


def ledger_post_buyer_commission(
    *, lead: Lead, advertiser_id: int, amount: Decimal | None, currency: str = ""
) -> list[LedgerEntry]:
    """The commission of another sale of a won lead that several advertisers bought (a shared offer):
    owed by the buyer that reports it, at the amount it reports, else the offer's payout per sale.

    Booked only for a buyer that bought the lead, has not returned its copy and owes no commission on
    it yet, and once the lead's first sale is booked (ledger_post_sale_commission): a lead won before
    the ledger has its sale booked by `ledger_backfill`, to the offer's advertiser, which may be the
    buyer reporting now."""
    if lead.is_test or not LedgerEntry.objects.filter(key=f"commission:{lead.pk}").exists():
        return []
    owed = LedgerEntry.objects.filter(lead=lead, advertiser_id=advertiser_id, kind=K.SALE_COMMISSION)
    if owed.exists() or not _bought_and_kept(lead, advertiser_id=advertiser_id):
        return []
    if not amount:
        amount, currency = lead.offer.payout_per_sale, lead.offer.currency
    if not amount:
        return []
    entry = _lead_entry(
        lead,
        key=f"commission:{lead.pk}:{advertiser_id}",
        kind=K.SALE_COMMISSION,
        amount=amount,
        currency=(currency or lead.offer.currency).upper(),
        advertiser_id=advertiser_id,
    )
    return ledger_post([entry])


def ledger_post_return(*, lead: Lead, advertiser_id: int | None = None) -> list[LedgerEntry]:
    """A return inside the offer's window reverses the sale, the commission and the supplier's payout.
    With `advertiser_id`, one buyer's return of a lead other buyers keep (kept_by_other_buyers): only
    what that advertiser was charged for it, its purchase and a commission it owed, is reversed.

    Outside the window nothing is refunded (buyers are refused then; staff may still mark it). Each
    entry is reversed once, however many returns name it."""
    if timezone.now() > return_deadline(lead):
        return []
    earlier = LedgerEntry.objects.filter(lead=lead, kind__in=list(REVERSALS)).order_by("id")
    if advertiser_id is not None:
        earlier = earlier.filter(kind__in=[K.LEAD_SOLD, K.SALE_COMMISSION], advertiser_id=advertiser_id)
    reversals = [
        LedgerEntry(
            key=f"reversal:{entry.pk}",
            kind=REVERSALS[entry.kind],
            amount=-entry.amount,
            currency=entry.currency,
            day=entry.day,
            lead=lead,
            delivery_id=entry.delivery_id,
            partner_id=entry.partner_id,
            advertiser_id=entry.advertiser_id,
            campaign_id=entry.campaign_id,
            offer_id=entry.offer_id,
            traffic_source_id=entry.traffic_source_id,
            payable_at=entry.payable_at,
        )
        for entry in earlier
    ]
    return ledger_post(reversals)


def kept_by_other_buyers(*, lead: Lead, advertiser_id: int) -> bool:
    """Whether another advertiser bought the lead (a shared offer sells it to several) and has not
    returned it: then one buyer's return is its own, and the lead, its payout and the others' sales stand."""
    return _bought_and_kept(lead, other_than=advertiser_id)


def _bought_and_kept(lead: Lead, *, advertiser_id: int | None = None, other_than: int | None = None) -> bool:
    """Whether an advertiser (`advertiser_id`, or any but `other_than`) bought the lead and has not
    returned its copy (the purchase's reversal not posted)."""
    sales = LedgerEntry.objects.filter(lead=lead, kind=K.LEAD_SOLD)
    sales = sales.filter(advertiser_id=advertiser_id) if advertiser_id is not None else sales
    sales = sales.exclude(advertiser_id=other_than) if other_than is not None else sales
    reversed_keys = set(LedgerEntry.objects.filter(lead=lead, kind=K.LEAD_RETURNED).values_list("key", flat=True))
    return any(f"reversal:{pk}" not in reversed_keys for pk in sales.values_list("pk", flat=True))


def ledger_sync_media_spend(*, days: Iterable[tuple[int, datetime.date]]) -> list[LedgerEntry]:
    """Bring the ledger's media spend of these (campaign id, day) pairs to what the daily stats say now:
    a new day posts its spend, a changed or deleted one posts the difference. Safe to run again."""
    days = set(days)
    if not days:
        return []
    campaign_ids, dates = {c for c, _ in days}, {d for _, d in days}
    stats = DailyStat.objects.filter(campaign_id__in=campaign_ids, date__in=dates).select_related("offer")
    wanted: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for stat in stats:
        if (stat.campaign_id, stat.date) in days:
            group = (stat.campaign_id, stat.date, stat.offer_id, stat.traffic_source_id, stat.offer.currency)
            wanted[group] -= stat.spend
    booked = (
        LedgerEntry.objects.filter(kind=K.MEDIA_SPEND, campaign_id__in=campaign_ids, day__in=dates)
        .values("campaign_id", "day", "offer_id", "traffic_source_id", "currency")
        .annotate(total=Sum("amount"), entries=Count("id"))
        .order_by()
    )
    have: dict[tuple[Any, ...], Decimal] = {}
    corrections: dict[tuple[int, datetime.date], int] = defaultdict(int)
    for row in booked:
        if (row["campaign_id"], row["day"]) in days:
            group = (row["campaign_id"], row["day"], row["offer_id"], row["traffic_source_id"], row["currency"])
            have[group] = row["total"]
            corrections[row["campaign_id"], row["day"]] += row["entries"]
    entries = []
    for group in sorted(set(wanted) | set(have), key=str):
        difference = wanted.get(group, Decimal("0")) - have.get(group, Decimal("0"))
        if not difference:
            continue
        campaign_id, day, offer_id, source_id, currency = group
        corrections[campaign_id, day] += 1
        entries.append(
            LedgerEntry(
                # The n-th entry of the day: two syncs that saw the same state post it once.
                key=f"spend:{campaign_id}:{day.isoformat()}:{corrections[campaign_id, day]}",
                kind=K.MEDIA_SPEND,
                amount=difference,
                currency=currency,
                day=day,
                campaign_id=campaign_id,
                offer_id=offer_id,
                traffic_source_id=source_id,
                advertiser_id=None,
            )
        )
    return ledger_post(entries)


def ledger_sync_all_media_spend(*, batch: int = 2000) -> int:
    """Every day of spend and every day already booked, reconciled (a repair and a first fill)."""
    days = set(DailyStat.objects.values_list("campaign_id", "date"))
    days |= set(LedgerEntry.objects.filter(kind=K.MEDIA_SPEND).values_list("campaign_id", "day").distinct())
    ordered, posted = sorted(days), 0
    for start in range(0, len(ordered), batch):
        with transaction.atomic():
            posted += len(ledger_sync_media_spend(days=ordered[start : start + batch]))
    return posted


@transaction.atomic
def ledger_record_payment(
    *,
    amount: Decimal,
    currency: str,
    advertiser: Advertiser | None = None,
    partner: Partner | None = None,
    note: str = "",
    user: User | None = None,
    reference: str = "",
) -> LedgerEntry:
    """Money a buyer paid in (topping up its account) or money we paid a supplier."""
    if advertiser is not None and partner is None:
        kind, who = K.BUYER_PAYMENT, f"buyer:{advertiser.pk}"
    elif partner is not None and advertiser is None:
        kind, who = K.SUPPLIER_PAYMENT, f"supplier:{partner.pk}"
    else:
        raise InvalidInput("A payment is from one buyer or to one supplier.")
    if amount is None or amount <= 0:
        raise InvalidInput("Enter the amount paid.", extra={"amount": ["Enter an amount above zero."]})
    now = timezone.now()
    entry = LedgerEntry(
        # The payer's own reference (a bank transfer id) makes a payment entered twice count once.
        key=f"payment:{who}:{reference or now.isoformat()}"[:120],
        kind=kind,
        amount=amount,
        currency=currency.upper(),
        day=timezone.localdate(now),
        created_at=now,
        advertiser=advertiser,
        partner=partner,
        note=(note or reference)[:300],
        created_by=user,
    )
    posted = ledger_post([entry])
    if not posted:
        raise InvalidInput(f"A payment with reference {reference!r} was already recorded.")
    return entry


def _balance(entries: QuerySet[LedgerEntry], signs: dict[str, int], before: datetime.datetime | None) -> Decimal:
    """The entries' effect on a counterparty's balance (booked before a moment, if given)."""
    entries = entries.filter(kind__in=list(signs))
    if before is not None:
        entries = entries.filter(created_at__lt=before)
    totals = entries.values_list("kind").annotate(total=Sum("amount")).order_by()
    return sum((signs[kind] * total for kind, total in totals), Decimal("0"))


def buyer_balance_change() -> Case:
    """An entry's effect on its buyer's balance, as SQL (payments in, charges out)."""
    return Case(
        *(When(kind=kind, then=sign * F("amount")) for kind, sign in BUYER_BALANCE_SIGN.items()),
        output_field=DecimalField(max_digits=20, decimal_places=4),
    )


def buyer_balances(advertiser_ids: Iterable[int], currency: str) -> dict[int, Decimal]:
    """{advertiser id: balance} in one query (routing's credit check)."""
    entries = LedgerEntry.objects.filter(
        advertiser_id__in=list(advertiser_ids), currency=currency, kind__in=BUYER_BALANCE_SIGN
    )
    rows = entries.values_list("advertiser_id").annotate(balance=Sum(buyer_balance_change())).order_by()
    return {advertiser_id: balance for advertiser_id, balance in rows}


def buyer_balance(advertiser_id: int, currency: str, *, before: datetime.datetime | None = None) -> Decimal:
    """A buyer's balance from its entries: paid in less charged (before a moment, for a statement's opening)."""
    entries = LedgerEntry.objects.filter(advertiser_id=advertiser_id, currency=currency)
    return _balance(entries, BUYER_BALANCE_SIGN, before)


def supplier_balance(
    partner_id: int,
    currency: str,
    *,
    before: datetime.datetime | None = None,
    payable_by: datetime.datetime | None = None,
) -> Decimal:
    """What we owe a supplier (booked before a moment); with `payable_by`, only payouts whose return
    window has passed by then (reversals go with the payout they reverse; payments always count)."""
    entries = LedgerEntry.objects.filter(partner_id=partner_id, currency=currency)
    if payable_by is not None:
        entries = entries.filter(Q(payable_at__lte=payable_by) | Q(payable_at__isnull=True))
    return _balance(entries, SUPPLIER_BALANCE_SIGN, before)

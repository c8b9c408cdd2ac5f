"""Buyers' accounts: a credit limit or a prepaid balance that routing respects."""

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from ..models import BuyerAccount
from .delivery import deliveries_release_held
from .ledger import ledger_record_payment


@transaction.atomic
def buyer_account_save(*, account: BuyerAccount) -> int:
    """Open or change a buyer's account; returns how many of its held leads are routed again now.

    Its balance is the buyer's ledger, from the first entry; a raised limit or a payment releases the
    buyer's held leads at once instead of at their next hourly check."""
    account.save()
    return deliveries_release_held(advertiser_id=account.advertiser_id)


@transaction.atomic
def buyer_payment_record(
    *, account: BuyerAccount, amount: Decimal, reference: str = "", note: str = "", user: User | None = None
) -> int:
    """A buyer's payment into its account; its held leads are routed again now (returns how many)."""
    ledger_record_payment(
        advertiser=account.advertiser,
        amount=amount,
        currency=account.currency,
        reference=reference,
        note=note,
        user=user,
    )
    return deliveries_release_held(advertiser_id=account.advertiser_id)

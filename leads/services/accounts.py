"""Buyers' accounts: a credit limit or a prepaid balance that routing respects."""

from django.db import transaction

from ..models import BuyerAccount
from .delivery import deliveries_release_held
from .ledger import buyer_balance


@transaction.atomic
def buyer_account_save(*, account: BuyerAccount) -> int:
    """Open or change a buyer's account; returns how many of its held leads are routed again now.

    A new account starts from the buyer's entries already in the ledger; a raised limit or a payment
    releases the buyer's held leads at once instead of at their next hourly check."""
    if account.pk is None:
        account.balance = buyer_balance(account.advertiser_id, account.currency)
        account.save()
    else:
        BuyerAccount.objects.filter(pk=account.pk).update(credit_limit=account.credit_limit)
    return deliveries_release_held(advertiser_id=account.advertiser_id)

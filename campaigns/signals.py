"""Signals other apps listen to without campaigns importing them."""

from django.dispatch import Signal

# Sent with days=[(campaign id, date), ...] inside the transaction that imported or changed those days
# of spend, so the money ledger books the difference in the same transaction. A single day saved or
# deleted through the model sends Django's post_save / post_delete instead.
daily_stats_changed = Signal()

"""Signals other apps listen to without leads importing them."""

from django.dispatch import Signal

# Sent with lead=... inside the transaction that erases the lead's personal data, so apps that keep
# copies of it (nurture's sent messages) erase theirs in the same transaction.
lead_erased = Signal()

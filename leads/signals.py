"""Signals other apps listen to without leads importing them."""

from django.dispatch import Signal

# Sent with lead_ids=[...] and actor=<the user who had them erased, or None for the retention job>
# inside the transaction that erases those leads' personal data (one lead
# on request, a batch of them when their retention period ends), so apps that keep copies of it
# (nurture's sent messages) erase theirs in the same transaction, for the whole batch at once.
# `leads.services.erasure.one_of("lead_id", lead_ids)` filters on a batch's ids as one parameter.
leads_erased = Signal()

# Sent with lead=... and previous=<the status before> inside the transaction of a status change, so
# apps that keep figures per lead (reporting's rollups) move them in the same transaction.
lead_status_changed = Signal()

# Sent with entries=[LedgerEntry, ...] (those just booked, never a repeat) inside the transaction that
# booked them. An entry's lead, when it has one, is loaded on it.
ledger_posted = Signal()

# Sent when staff read personal data, with user=..., kind=..., path=... (the request's path) and lead=...
# (one lead) or rows=... (how many leads an export or a list held): an access log records it. Kinds:
# lead_page, lead_export and the API's api_lead_list and api_lead_detail; other apps send their own.
personal_data_read = Signal()

"""bulk_update_rows and the JSON writes (bulk_insert_rows, bulk_update_json) write each row's own values
(JSON, NULL, times, text) and refuse, rather than cut short, a value too long for its column."""

from datetime import timedelta

import pytest
from django.db import DataError, connection, transaction
from django.utils import timezone

from leadcrm.bulk import bulk_insert_rows, bulk_update_json, bulk_update_rows
from leads.models import Delivery, DeliveryDestination, OutboxEntry
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_and_the_others_are_left_alone():
    lead = LeadFactory()
    first, second, untouched = OutboxEntry.objects.bulk_create(
        OutboxEntry(lead=lead, kind="delivery", payload={"n": n}, claimed_until=timezone.now()) for n in range(3)
    )
    later = timezone.now() + timedelta(hours=1)
    first.payload, first.claimed_until, first.last_error = {"held": "no buyer", "ids": [1, 2]}, None, "Ünïcode"
    second.payload, second.next_attempt_at, second.last_error = {}, later, 'it\'s "quoted"'

    assert bulk_update_rows([first, second], ["payload", "claimed_until", "next_attempt_at", "last_error"]) == 2

    rows = {row.pk: row for row in OutboxEntry.objects.all()}
    assert (rows[first.pk].payload, rows[first.pk].claimed_until, rows[first.pk].last_error) == (
        {"held": "no buyer", "ids": [1, 2]},
        None,
        "Ünïcode",
    )
    assert (rows[second.pk].payload, rows[second.pk].next_attempt_at, rows[second.pk].last_error) == (
        {},
        later,
        'it\'s "quoted"',
    )
    assert rows[untouched.pk].payload == {"n": 2} and rows[untouched.pk].claimed_until is not None
    assert bulk_update_rows([], ["payload"]) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce a column's length")
def test_a_value_too_long_for_its_column_is_refused_not_cut_short():
    lead = LeadFactory()
    delivery = Delivery.objects.create(lead=lead, destination=_destination(lead))
    delivery.reason = "x" * 501  # the column holds 500

    with pytest.raises(DataError), transaction.atomic():
        bulk_update_rows([delivery], ["reason"])

    assert Delivery.objects.get(pk=delivery.pk).reason == ""


def _destination(lead) -> DeliveryDestination:
    return DeliveryDestination.objects.create(advertiser=lead.offer.advertiser, name="Inbox", url="https://b.example")


def test_json_writes_insert_and_update_each_rows_own_values_with_the_models_defaults():
    lead = LeadFactory()
    later = timezone.now() + timedelta(hours=1)
    created = bulk_insert_rows(
        OutboxEntry,
        [
            {"lead_id": lead.pk, "kind": "delivery", "payload": {"n": 1, "text": 'Ünïcode "quoted"'}},
            {"lead_id": lead.pk, "kind": "postback", "payload": {}, "next_attempt_at": later},
        ],
        returning=("id", "kind"),
    )

    assert sorted(kind for _, kind in created) == ["delivery", "postback"]
    rows = {row.kind: row for row in OutboxEntry.objects.filter(pk__in=[pk for pk, _ in created])}
    assert rows["delivery"].payload == {"n": 1, "text": 'Ünïcode "quoted"'}
    assert (rows["delivery"].status, rows["delivery"].attempts, rows["delivery"].last_error) == ("pending", 0, "")
    assert rows["postback"].next_attempt_at == later and rows["delivery"].next_attempt_at <= timezone.now()

    first, second = rows["delivery"], rows["postback"]
    first.claimed_until, first.last_error, second.payload = later, "it's ok", {"held": [1, 2]}
    assert bulk_update_json([first, second], ["claimed_until", "last_error", "payload"]) == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.claimed_until, first.last_error, second.payload) == (later, "it's ok", {"held": [1, 2]})
    assert bulk_insert_rows(OutboxEntry, [], returning=("id",)) == [] and bulk_update_json([], ["payload"]) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce a column's length")
def test_json_update_refuses_a_value_too_long_for_its_column():
    lead = LeadFactory()
    delivery = Delivery.objects.create(lead=lead, destination=_destination(lead))
    delivery.reason = "x" * 501

    with pytest.raises(DataError), transaction.atomic():
        bulk_update_json([delivery], ["reason"])

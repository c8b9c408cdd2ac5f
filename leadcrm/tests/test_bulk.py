"""bulk_update_rows writes each row's own values (JSON, NULL, times, text) and refuses, rather than cuts
short, a value too long for its column; bulk_update_rows_if writes only the rows that still match;
bulk_insert_rows stores each object's values as save() would and gives each its own id; insert_values
does the same from plain values with the model's defaults; deferred statements wait for the caller's
next round trip."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction
from django.utils import timezone

from leadcrm.bulk import (
    bulk_insert_rows,
    bulk_update_rows,
    bulk_update_rows_if,
    deferred_statements,
    execute_soon,
    first_rows,
    insert_rows,
    insert_soon,
    insert_statement,
    insert_values,
    last_rows,
    next_id_statement,
    planned_once,
    rows_source,
    take_deferred,
)
from leads.models import Delivery, DeliveryDestination, LeadEvent, LedgerEntry, OutboxEntry
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


def test_plain_values_are_inserted_with_the_models_defaults_and_updated_row_by_row():
    lead = LeadFactory()
    later = timezone.now() + timedelta(hours=1)
    created = insert_values(
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
    assert bulk_update_rows([first, second], ["claimed_until", "last_error", "payload"]) == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.claimed_until, first.last_error, second.payload) == (later, "it's ok", {"held": [1, 2]})
    assert insert_values(OutboxEntry, [], returning=("id",)) == [] and bulk_update_rows([], ["payload"]) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce a column's length")
def test_inserting_plain_values_refuses_a_value_too_long_for_its_column_and_writes_none():
    lead = LeadFactory()

    with pytest.raises(DataError), transaction.atomic():
        insert_values(OutboxEntry, [{"lead_id": lead.pk, "kind": "k" * 21, "payload": {}}], returning=("id",))

    assert not OutboxEntry.objects.filter(lead=lead).exists()


def test_only_rows_that_still_match_are_updated_and_their_ids_returned():
    lead, other = LeadFactory(), LeadFactory()
    destination = _destination(lead)
    pending, accepted = Delivery.objects.bulk_create(
        Delivery(lead=each, destination=destination, status=status)
        for each, status in ((lead, "pending"), (other, "accepted"))
    )
    for delivery in (pending, accepted):
        delivery.status, delivery.reason = "rejected", "no thanks"

    assert bulk_update_rows_if([pending, accepted], ["status", "reason"], {"status": "pending"}) == {pending.pk}

    assert dict(Delivery.objects.values_list("pk", "status")) == {pending.pk: "rejected", accepted.pk: "accepted"}
    assert Delivery.objects.get(pk=accepted.pk).reason == ""
    assert bulk_update_rows_if([], ["status"], {"status": "pending"}) == set()


def test_inserted_rows_keep_every_value_and_get_their_ids_in_order():
    lead, other = LeadFactory(), LeadFactory()
    destination = _destination(lead)
    moment = timezone.now().replace(microsecond=123456)
    deliveries = [
        Delivery(lead=lead, destination=destination, price=Decimal("12.34"), reason='it\'s "quoted" Ünïcode'),
        Delivery(lead=other, destination=destination, price=None, finished_at=moment, last_status_code=200),
    ]
    events = [
        LeadEvent(lead=lead, kind=LeadEvent.Kind.DELIVERY, data={"buyer": "A", "nested": [1, None, {"x": "y"}]}),
        LeadEvent(lead=lead, kind=LeadEvent.Kind.DELIVERY, data={}),
    ]

    assert bulk_insert_rows(deliveries) == deliveries
    bulk_insert_rows(events)

    stored = [Delivery.objects.get(pk=delivery.pk) for delivery in deliveries]
    assert [delivery.pk for delivery in deliveries] == sorted(delivery.pk for delivery in deliveries)
    assert [(d.public_id, d.price, d.reason, d.finished_at, d.last_status_code) for d in stored] == [
        (deliveries[0].public_id, Decimal("12.34"), 'it\'s "quoted" Ünïcode', None, None),
        (deliveries[1].public_id, None, "", moment, 200),
    ]
    assert [LeadEvent.objects.get(pk=event.pk).data for event in events] == [event.data for event in events]
    assert not deliveries[0]._state.adding
    assert bulk_insert_rows([]) == []


def test_rows_inserted_from_plain_values_each_get_their_own_callable_default():
    lead = LeadFactory()
    first, second = (
        DeliveryDestination.objects.create(advertiser=lead.offer.advertiser, name=name, url="https://b.example")
        for name in ("First", "Second")
    )

    insert_rows(Delivery, ["lead_id", "destination_id"], [(lead.pk, first.pk), (lead.pk, second.pk)])

    assert len({delivery.public_id for delivery in Delivery.objects.filter(lead=lead)}) == 2


def test_deferred_statements_go_with_the_callers_round_trip_and_the_unsent_run_when_the_block_ends():
    lead = LeadFactory()
    insert = "INSERT INTO leads_leadevent (lead_id, kind, data, created_at) "

    def note(text: str) -> None:
        source, params = rows_source(
            LeadEvent, ["lead_id", "kind", "data", "created_at"], [(lead.pk, "note", {"text": text}, timezone.now())]
        )
        execute_soon(insert + source, params)

    def notes() -> list[str]:
        return sorted(
            data["text"] for data in LeadEvent.objects.filter(lead=lead, kind="note").values_list("data", flat=True)
        )

    with deferred_statements() as deferred:
        note("sent along")
        assert notes() == []  # kept, not run
        insert_rows(OutboxEntry, ["lead_id", "kind", "payload"], [(lead.pk, "delivery", {})], before=deferred)
        deferred.clear()
        note("left over")
        assert notes() == ["sent along"]
    assert notes() == ["left over", "sent along"]
    note("outside")  # no block: at once
    assert notes() == ["left over", "outside", "sent along"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ON CONFLICT DO NOTHING RETURNING: PostgreSQL's path")
def test_objects_whose_unique_value_is_taken_are_left_out_and_the_others_inserted_with_their_ids():
    def entry(key: str, amount: str) -> LedgerEntry:
        return LedgerEntry(
            key=key, kind="media_spend", amount=Decimal(amount), currency="USD", day=timezone.localdate()
        )

    taken = bulk_insert_rows([entry("spend:taken", "1.00")])[0]
    fresh, again, twice, repeated = (
        entry("spend:new", "2.00"),
        entry("spend:taken", "3.00"),
        *(entry("spend:twice", amount) for amount in ("4.00", "5.00")),
    )

    inserted = bulk_insert_rows([fresh, again, twice, repeated], skip_conflicts_on="key")

    assert inserted == [fresh, twice]
    assert again.pk is None and repeated.pk is None
    assert dict(LedgerEntry.objects.values_list("key", "amount")) == {
        "spend:taken": Decimal("1.00"),
        "spend:new": Decimal("2.00"),
        "spend:twice": Decimal("4.00"),
    }
    assert LedgerEntry.objects.get(pk=fresh.pk).key == "spend:new" and taken.pk != fresh.pk


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the path without ON CONFLICT")
def test_skipping_conflicts_where_the_statement_cannot_is_refused_and_inserts_nothing():
    entry = LedgerEntry(
        key="spend:one", kind="media_spend", amount=Decimal("1.00"), currency="USD", day=timezone.localdate()
    )

    with pytest.raises(NotImplementedError, match="skip_conflicts_on needs PostgreSQL"):
        bulk_insert_rows([entry], skip_conflicts_on="key")

    assert not LedgerEntry.objects.exists() and entry.pk is None


def test_statements_kept_back_are_taken_by_a_caller_and_sent_before_its_own():
    lead, other = LeadFactory(), LeadFactory()
    destination = _destination(lead)
    delivery = Delivery.objects.create(lead=lead, destination=destination)
    delivery.status = "accepted"
    note = rows_source(LeadEvent, ["lead_id", "kind", "data", "created_at"], [(other.pk, "note", {}, timezone.now())])

    with deferred_statements():
        execute_soon("INSERT INTO leads_leadevent (lead_id, kind, data, created_at) " + note[0], note[1])
        updated = bulk_update_rows_if([delivery], ["status"], {"status": "pending"}, before=take_deferred())
        assert LeadEvent.objects.filter(lead=other, kind="note").count() == 1  # sent with the update
        assert take_deferred() == []  # taken once
        [(pk,)] = last_rows([("SELECT id FROM leads_delivery WHERE status = %s", ["accepted"])])

    assert updated == {delivery.pk} == {pk}
    assert take_deferred() == []  # outside a block nothing is kept


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ids come before the insert from PostgreSQL's sequences")
def test_an_object_inserted_soon_is_stored_as_save_stores_it_with_its_signals_when_the_round_trip_goes():
    from campaigns.tests.factories import CampaignFactory
    from leads.models import Lead
    from reporting.models import DailyRollup

    campaign = CampaignFactory()
    fields = {"campaign": campaign, "offer": campaign.offer, "traffic_source": campaign.traffic_source}
    saved = Lead(**fields, email="saved@example.com", answers={"roof": "flat"}, budget=Decimal("1500.50"))
    saved.save()
    soon = Lead(**fields, email="soon@example.com", answers={"roof": "flat"}, budget=Decimal("1500.50"))

    with transaction.atomic(), deferred_statements() as deferred:
        (soon.pk,) = first_rows([next_id_statement(Lead)])[0]
        insert_soon(soon)
        assert not Lead.objects.filter(pk=soon.pk).exists()  # kept for the round trip
        assert not soon._state.adding
        insert_rows(LeadEvent, ["lead_id", "kind", "data"], [(soon.pk, "note", {})], before=deferred)
        deferred.clear()

    columns = [
        field.attname for field in Lead._meta.concrete_fields if field.attname not in ("id", "public_id", "email")
    ]
    stored_saved, stored_soon = (Lead.objects.filter(pk=pk).values(*columns).get() for pk in (saved.pk, soon.pk))
    moments = {"created_at", "updated_at"}
    assert {k: v for k, v in stored_soon.items() if k not in moments} == {
        k: v for k, v in stored_saved.items() if k not in moments
    }
    assert stored_soon["updated_at"] >= stored_saved["updated_at"]  # auto_now set, as save() sets it
    # post_save's receivers ran: the rollup counts both leads.
    assert sum(DailyRollup.objects.filter(grain="detail").values_list("leads", flat=True)) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several statements share one execute on PostgreSQL")
def test_inserts_sent_together_are_prepared_once_a_session_and_store_each_round_trips_rows():
    from django.test.utils import CaptureQueriesContext

    lead = LeadFactory()

    def send(text: str) -> str:
        timeline = insert_statement(LeadEvent, ["lead_id", "kind", "data"], [(lead.pk, "note", {"text": text})])
        with CaptureQueriesContext(connection) as queries:
            insert_rows(
                OutboxEntry, ["lead_id", "kind", "payload"], [(lead.pk, "delivery", {"n": text})], before=[timeline]
            )
        (query,) = queries.captured_queries
        return query["sql"]

    first, second = send("50% off"), send("second")

    assert first.count("EXECUTE ") == 2  # prepared by this round trip, or by an earlier one of the session
    assert "PREPARE " not in second and second.count("EXECUTE ") == 2
    assert '/* INSERT INTO "leads_leadevent" */' in second and '/* INSERT INTO "leads_outboxentry" */' in second
    texts = LeadEvent.objects.filter(lead=lead, kind="note").values_list("data", flat=True)
    assert sorted(data["text"] for data in texts) == ["50% off", "second"]
    assert sorted(entry.payload["n"] for entry in OutboxEntry.objects.filter(lead=lead)) == ["50% off", "second"]


def test_a_lookup_planned_once_answers_for_each_call_s_own_values():
    from django.test.utils import CaptureQueriesContext

    leads = LeadFactory.create_batch(2)
    lookup = "SELECT id FROM leads_lead WHERE id = %s"

    def find(pk: int) -> tuple[list, str]:
        with CaptureQueriesContext(connection) as queries:
            rows = first_rows([("SELECT 1", []), planned_once((lookup, [pk]))])
        return rows, queries.captured_queries[-1]["sql"]

    (first, _), (second, second_sql) = find(leads[0].pk), find(leads[1].pk)

    assert first == [(1,), (leads[0].pk,)] and second == [(1,), (leads[1].pk,)]
    assert find(0)[0] == [(1,), None]
    if connection.vendor == "postgresql":  # prepared by the session's first call, then only executed
        assert "PREPARE " not in second_sql and "EXECUTE " in second_sql


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several statements share one execute on PostgreSQL")
def test_a_round_trip_that_failed_after_preparing_leaves_the_next_ones_working():
    from django.db import IntegrityError

    lead = LeadFactory()
    # A statement of its own shape, so this round trip is the one that prepares it, whatever ran before.
    fields = ["lead_id", "kind", "data", "actor_id"]
    event = insert_statement(LeadEvent, fields, [(lead.pk, "note", {"text": "kept"}, None)])
    broken = insert_statement(LeadEvent, fields, [(lead.pk, "note", {"text": "lost"}, 2_000_000_000)])  # no such user

    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign key fails within the round trip
        insert_rows(OutboxEntry, ["lead_id", "kind", "payload"], [(lead.pk, "delivery", {})], before=[broken])
    # Its PREPAREs ran before the failure and outlived the rollback; the next round trips still work.
    for _ in range(2):
        insert_rows(OutboxEntry, ["lead_id", "kind", "payload"], [(lead.pk, "delivery", {})], before=[event])

    assert [
        data["text"] for data in LeadEvent.objects.filter(lead=lead, kind="note").values_list("data", flat=True)
    ] == [
        "kept",
        "kept",
    ]
    assert OutboxEntry.objects.filter(lead=lead).count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several statements share one execute on PostgreSQL")
def test_behind_a_transaction_pooler_inserts_sent_together_are_not_prepared(monkeypatch):
    from django.test.utils import CaptureQueriesContext

    lead = LeadFactory()
    # Django's setting for a pooler (PgBouncer's transaction mode) that hands a transaction any session.
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    timeline = insert_statement(LeadEvent, ["lead_id", "kind", "data"], [(lead.pk, "note", {"text": "pooled"})])

    with CaptureQueriesContext(connection) as queries:
        insert_rows(OutboxEntry, ["lead_id", "kind", "payload"], [(lead.pk, "delivery", {})], before=[timeline])

    (query,) = queries.captured_queries
    assert "PREPARE " not in query["sql"] and "EXECUTE " not in query["sql"]
    assert 'INSERT INTO "leads_leadevent"' in query["sql"] and 'INSERT INTO "leads_outboxentry"' in query["sql"]
    assert OutboxEntry.objects.filter(lead=lead).count() == 1

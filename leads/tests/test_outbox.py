"""The outbox: claimed once, retried with backoff, re-sent by the sweeper, run by a real worker."""

import datetime
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import kombu.pools
import pytest
from django.db import connection
from django.utils import timezone

from leadcrm.celery import app as celery_app
from leads.models import IdempotencyRecord, Lead, OutboxEntry, Partner
from leads.services import outbox as outbox_module
from leads.services import outbox_process, outbox_sweep
from leads.services.idempotency import idempotency_records_purge
from leads.services.outbox import MAX_ATTEMPTS, RetryLater, register_outbox_handler
from leads.tests.factories import LeadFactory

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def recorded_handler():
    """A handler for the delivery kind that records calls and fails on demand."""
    calls, failures = [], []

    def handler(entry):
        calls.append(entry.pk)
        if failures:
            raise failures.pop(0)

    previous = outbox_module.follow_up_kind("delivery")
    register_outbox_handler("delivery", handler)
    yield calls, failures
    outbox_module.register_follow_up(previous)


@pytest.mark.django_db
def test_an_entry_runs_once_even_if_its_task_arrives_twice(recorded_handler):
    calls, _ = recorded_handler
    entry = OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery")

    assert outbox_process(entry_id=entry.pk) == "done"
    assert outbox_process(entry_id=entry.pk) == "not due"

    entry.refresh_from_db()
    assert calls == [entry.pk]
    assert (entry.status, entry.attempts) == ("done", 1)
    assert entry.lead.events.filter(kind="follow_up_done", data__follow_up="delivery").count() == 1


@pytest.mark.django_db
def test_a_failure_is_retried_later_with_backoff_and_then_succeeds(recorded_handler):
    calls, failures = recorded_handler
    failures.append(ConnectionError("buyer down"))
    entry = OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery")

    assert outbox_process(entry_id=entry.pk) == "retry"
    entry.refresh_from_db()
    assert entry.status == "pending" and entry.last_error == "ConnectionError: buyer down"
    assert entry.next_attempt_at > timezone.now() + datetime.timedelta(seconds=7)
    assert outbox_process(entry_id=entry.pk) == "not due"  # not before its time

    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())
    assert outbox_process(entry_id=entry.pk) == "done"
    assert len(calls) == 2


@pytest.mark.django_db
def test_retry_later_honours_the_given_delay(recorded_handler):
    _, failures = recorded_handler
    failures.append(RetryLater("429 from buyer", delay=120))
    entry = OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery")

    outbox_process(entry_id=entry.pk)

    entry.refresh_from_db()
    wait = (entry.next_attempt_at - timezone.now()).total_seconds()
    assert 110 < wait <= 120


@pytest.mark.django_db
def test_after_the_last_attempt_the_entry_is_failed(recorded_handler):
    _, failures = recorded_handler
    failures.append(ValueError("still broken"))
    entry = OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery", attempts=MAX_ATTEMPTS - 1)

    assert outbox_process(entry_id=entry.pk) == "failed"
    entry.refresh_from_db()
    assert entry.status == "failed"
    assert outbox_sweep() == 0  # failed entries wait for staff, not the sweeper


@pytest.mark.django_db
def test_a_worker_that_died_mid_task_frees_its_entry_after_the_claim_expires(recorded_handler):
    calls, _ = recorded_handler
    entry = OutboxEntry.objects.create(
        lead=LeadFactory(),
        kind="delivery",
        status="processing",
        attempts=1,
        claimed_until=timezone.now() + datetime.timedelta(minutes=4),
    )
    assert outbox_process(entry_id=entry.pk) == "not due"

    OutboxEntry.objects.filter(pk=entry.pk).update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    assert outbox_process(entry_id=entry.pk) == "done"
    assert calls == [entry.pk]


class WorkerStopped(BaseException):
    """A worker killed while it runs an entry (out of memory, a hard time limit): it records nothing,
    and its claim stays on the entry until it runs out."""


@pytest.fixture
def batches_run(settings):
    """The delivery kind's batches as they run, by entry id; an entry whose payload says "poison"
    stops its worker. Claims run out at once, as a stopped worker's claim does in the end."""
    settings.OUTBOX_CLAIM_SECONDS = 0
    runs: list[list[int]] = []

    def handle_batch(entries, deadline):
        runs.append([entry.pk for entry in entries])
        for entry in entries:
            if entry.payload.get("poison"):
                raise WorkerStopped
            yield entry, RetryLater("the buyer is busy") if entry.payload.get("busy") else None

    previous = outbox_module.follow_up_kind("delivery")
    outbox_module.register_follow_up(replace(previous, handle_batch=handle_batch))
    yield runs
    outbox_module.register_follow_up(previous)


@pytest.mark.django_db
def test_entries_a_stopped_worker_left_go_again_one_by_one_never_in_another_batch(batches_run):
    lead = LeadFactory()
    entries = OutboxEntry.objects.bulk_create(OutboxEntry(lead=lead, kind="delivery") for _ in range(3))
    assert outbox_module._claim([entry.pk for entry in entries], [], 3)[0]  # a worker took them, then stopped

    # Had one of them stopped it, a draining worker taking them into its batch would stop too.
    assert outbox_module.outbox_drain(queue=None, top_up=True) == {}
    assert outbox_sweep() == 3

    assert sorted(batches_run) == [[entry.pk] for entry in entries]  # each alone, in a task of its own
    assert set(OutboxEntry.objects.values_list("status", "lost_claims")) == {("done", 1)}


@pytest.mark.django_db
def test_an_entry_that_stops_its_worker_every_time_fails_for_staff_to_retry(
    batches_run, caplog, django_capture_on_commit_callbacks
):
    entry = OutboxEntry.objects.create(
        lead=LeadFactory(email="ada@example.com"), kind="delivery", payload={"poison": 1}
    )
    with pytest.raises(WorkerStopped):
        outbox_process(entry_id=entry.pk)

    for lost_claims in (1, 2, 3):  # taken back alone, it stops a worker again
        with pytest.raises(WorkerStopped):
            outbox_sweep()
        entry.refresh_from_db()
        assert (entry.status, entry.lost_claims) == ("processing", lost_claims)

    assert outbox_sweep() == 0  # the fourth time its worker stopped, it is failed, not run again
    entry.refresh_from_db()
    assert entry.status == "failed"
    assert entry.last_error.startswith("WorkerStopped: its worker stopped the last 4 times it ran")
    assert len(batches_run) == 4
    assert f"Outbox entry {entry.pk} (delivery) stopped its worker 4 times in a row; failed" in caplog.text
    assert "ada@" not in caplog.text
    assert outbox_sweep() == 0

    # Staff retry it: it runs once more, alone (no draining batch takes it), and fails again if it stops
    # its worker again; once its cause is fixed it ends, and counts from nought.
    with django_capture_on_commit_callbacks() as sent_after_commit:
        assert outbox_module.outbox_retry(entry_ids=[entry.pk]) == 1
    assert (OutboxEntry.objects.get(pk=entry.pk).status, outbox_module.outbox_drain(queue=None, top_up=True)) == (
        "pending",
        {},
    )
    with pytest.raises(WorkerStopped):
        for send in sent_after_commit:
            send()
    assert batches_run[-1] == [entry.pk] and outbox_sweep() == 0
    entry.refresh_from_db()
    assert entry.status == "failed"
    OutboxEntry.objects.filter(pk=entry.pk).update(payload={})  # its cause fixed
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_module.outbox_retry(entry_ids=[entry.pk]) == 1
    entry.refresh_from_db()
    assert (entry.status, batches_run[-1]) == ("done", [entry.pk])


def stopped_entry(lead, *, lost_claims=0, **fields):
    """What a worker that stopped while running the entry left: its claim, run out."""
    return OutboxEntry.objects.create(
        lead=lead,
        kind="delivery",
        status="processing",
        attempts=1,
        claimed_until=timezone.now() - datetime.timedelta(seconds=1),
        lost_claims=lost_claims,
        **fields,
    )


@pytest.mark.django_db
def test_a_backlog_of_due_entries_does_not_hold_back_the_ones_a_stopped_worker_left(batches_run):
    lead = LeadFactory()
    old = timezone.now() - datetime.timedelta(hours=1)
    OutboxEntry.objects.bulk_create(OutboxEntry(lead=lead, kind="delivery", next_attempt_at=old) for _ in range(3))
    stopped = stopped_entry(lead)

    assert outbox_sweep(limit=2) == 3  # two of the backlog, and the stopped one besides

    assert [stopped.pk] in batches_run


@pytest.mark.django_db
def test_an_entry_at_its_limit_of_stopped_workers_runs_no_more_whichever_task_comes(batches_run):
    lead = LeadFactory()
    spent = stopped_entry(lead, lost_claims=outbox_module.MAX_LOST_CLAIMS)
    queued = stopped_entry(lead, dispatched_at=timezone.now())

    # A duplicate task, or its batch's message back from a stopped worker, does not run it again.
    assert outbox_process(entry_id=spent.pk) == "not due"
    assert outbox_sweep() == 0  # failed; and the other's task, sent a moment ago, is left to run

    assert batches_run == []
    assert OutboxEntry.objects.get(pk=spent.pk).status == "failed"
    assert OutboxEntry.objects.get(pk=queued.pk).status == "processing"


@pytest.mark.django_db
def test_an_entry_that_ran_to_an_end_starts_counting_stopped_workers_again(batches_run):
    # Stopped twice with the batches it was in, it then ran and asked to wait.
    entry = stopped_entry(LeadFactory(), lost_claims=2, payload={"busy": 1})

    assert outbox_sweep() == 1

    entry.refresh_from_db()
    assert (entry.status, entry.lost_claims) == ("pending", 0)  # another batch's crash cannot fail it


@pytest.mark.django_db
def test_sweeper_sends_due_entries_with_a_handler_only(recorded_handler):
    calls, _ = recorded_handler
    lead = LeadFactory()
    due = OutboxEntry.objects.create(lead=lead, kind="delivery")
    OutboxEntry.objects.create(lead=lead, kind="delivery", next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    OutboxEntry.objects.create(lead=lead, kind="delivery", status="done")
    waiting_for_handler = OutboxEntry.objects.create(lead=lead, kind="future_kind")  # no handler registered

    assert outbox_sweep() == 1  # eager Celery runs the task at once in tests

    assert calls == [due.pk]
    waiting_for_handler.refresh_from_db()
    assert waiting_for_handler.status == "pending"


# --- with a real Celery worker --------------------------------------------------------------
@pytest.fixture
def celery_worker(tmp_path, settings):
    """A real worker process on the test database and a private file-system broker folder."""
    database = connection.settings_dict
    if connection.vendor == "postgresql":
        url = f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    else:
        url = f"sqlite:///{database['NAME']}"
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    options = {"data_folder_in": str(broker_dir), "data_folder_out": str(broker_dir)}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadcrm.settings_test",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_DIR": str(broker_dir),
    }
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "leadcrm",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    environment_broker = os.environ.get("CELERY_BROKER_URL")
    old = {
        "task_always_eager": celery_app.conf.task_always_eager,
        "broker_url": celery_app.conf.broker_url,
        "broker_transport_options": celery_app.conf.broker_transport_options,
    }
    configure_celery(task_always_eager=False, broker_url="filesystem://", broker_transport_options=options)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        assert "ready." in log.read_text(), log.read_text()
        yield log
    finally:
        # Celery's shutdown, warm or cold, takes another 4 s or so; the test has seen what it waited
        # for (or failed), so the worker gets a moment (a fifth of a second) and is then killed.
        process.terminate()
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        configure_celery(**old)
        if environment_broker is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = environment_broker


def configure_celery(**options):
    """Point this process's Celery app elsewhere (settings keys carry the CELERY_ namespace)."""
    celery_app.conf.update({f"CELERY_{name.upper()}": value for name, value in options.items()})
    if "broker_url" in options:
        # Celery reads the CELERY_BROKER_URL environment variable before its settings.
        os.environ["CELERY_BROKER_URL"] = options["broker_url"]
    kombu.pools.reset()  # connections to the old broker must not be reused
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.slow
def test_a_real_worker_assigns_a_captured_lead_within_seconds(celery_worker, capture, staff_user_in):
    rep = staff_user_in("Sales")

    lead = capture(email="speed@example.com")

    assert wait_for(lambda: Lead.objects.filter(pk=lead.pk, assigned_to=rep).exists()), celery_worker.read_text()
    entry = lead.outbox_entries.get(kind="assignment")
    # The batch writes its entries' results when it ends, a moment after the assignment itself.
    assert wait_for(lambda: OutboxEntry.objects.filter(pk=entry.pk, status="done").exists(), seconds=10)
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == ("done", 1)
    assert "process_outbox_batch_task" in celery_worker.read_text()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.slow
def test_broker_down_loses_nothing_and_the_sweeper_sends_it_later(celery_worker, capture, staff_user_in):
    rep = staff_user_in("Sales")
    configure_celery(broker_url="redis://127.0.0.1:1/0")  # nothing listens there

    lead = capture(email="outage@example.com", consent=True)  # must not raise

    entry = lead.outbox_entries.get(kind="assignment")
    assert entry.status == "pending"
    assert not Lead.objects.get(pk=lead.pk).assigned_to

    configure_celery(broker_url="filesystem://")
    assert outbox_sweep() == 3  # the assignment, the delivery to the buyer and the nurture enrollment
    assert wait_for(lambda: Lead.objects.filter(pk=lead.pk, assigned_to=rep).exists()), celery_worker.read_text()


@pytest.mark.django_db
def test_a_worker_whose_claim_ran_out_does_not_overwrite_the_worker_that_took_over(recorded_handler):
    calls, _ = recorded_handler
    entry = OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery")

    def slow_handler(claimed):
        # While this worker is slow, its claim runs out and another worker runs the entry to the end.
        OutboxEntry.objects.filter(pk=claimed.pk).update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
        register_outbox_handler("delivery", lambda other: calls.append(("second", other.pk)))
        assert outbox_process(entry_id=claimed.pk) == "done"

    register_outbox_handler("delivery", slow_handler)

    assert outbox_process(entry_id=entry.pk) == "claim lost"
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == ("done", 2)
    assert calls == [("second", entry.pk)]
    assert entry.lead.events.filter(kind="follow_up_done").count() == 1


@pytest.mark.django_db
def test_idempotency_records_past_the_replay_window_are_purged():
    partner = Partner.objects.create(name="Acme")
    old = IdempotencyRecord.objects.create(
        partner=partner, key="old", request_hash="x", created_at=timezone.now() - datetime.timedelta(hours=25)
    )
    fresh = IdempotencyRecord.objects.create(partner=partner, key="fresh", request_hash="x")

    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not IdempotencyRecord.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db
def test_the_sweeper_leaves_a_recently_sent_entry_to_its_queued_task(recorded_handler):
    calls, _ = recorded_handler
    lead = LeadFactory()
    queued = OutboxEntry.objects.create(lead=lead, kind="delivery", dispatched_at=timezone.now())
    stale = OutboxEntry.objects.create(
        lead=lead, kind="delivery", dispatched_at=timezone.now() - outbox_module.SWEEP_GRACE - datetime.timedelta(1)
    )

    assert outbox_sweep() == 1  # only the one whose task has been queued longer than the grace

    # The worker runs the entry it was sent first, and tops its batch up with other due rows of its
    # queue: the one already queued runs once, and its own task later finds it done.
    assert calls == [stale.pk, queued.pk]
    assert outbox_process(entry_id=queued.pk) == "not due"
    assert calls == [stale.pk, queued.pk]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_after_the_broker_refused_a_task_requests_stop_trying_and_the_sweeper_sends_later(recorded_handler):
    calls, _ = recorded_handler
    lead = LeadFactory()
    first, second = (
        OutboxEntry.objects.create(lead=lead, kind="delivery", dispatched_at=timezone.now()) for _ in range(2)
    )
    environment_broker = os.environ.get("CELERY_BROKER_URL")
    old = {"task_always_eager": celery_app.conf.task_always_eager, "broker_url": celery_app.conf.broker_url}
    configure_celery(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")  # nothing listens there
    try:
        started = time.monotonic()
        outbox_module.dispatch([(first.pk, "delivery")])
        refused = time.monotonic() - started
        started = time.monotonic()
        outbox_module.dispatch([(second.pk, "delivery")])  # paused: not even tried
        paused = time.monotonic() - started
    finally:
        configure_celery(**old)
        if environment_broker is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = environment_broker

    assert paused < 0.05 < refused
    assert list(OutboxEntry.objects.filter(dispatched_at__isnull=True).order_by("pk").values_list("pk", flat=True)) == [
        first.pk,
        second.pk,
    ]
    assert outbox_sweep() == 2  # eager again: the sweeper sends both
    assert sorted(calls) == [first.pk, second.pk]


@pytest.mark.django_db
def test_a_retry_due_within_minutes_is_scheduled_now_and_a_later_one_is_left_to_the_sweeper(recorded_handler):
    _, failures = recorded_handler
    soon, later = (OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery") for _ in range(2))
    failures.extend([RetryLater("busy", delay=5), RetryLater("held", delay=3600)])

    assert outbox_process(entry_id=soon.pk) == "retry"
    assert outbox_process(entry_id=later.pk) == "retry"

    soon.refresh_from_db()
    later.refresh_from_db()
    # The short retry went to the broker with a countdown: the row says its task is queued until then.
    assert soon.dispatched_at == soon.next_attempt_at
    assert 4 <= (soon.next_attempt_at - timezone.now()).total_seconds() <= 5
    assert later.dispatched_at is None  # the sweeper sends it when due
    assert outbox_sweep() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's asynchronous commit")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_claims_its_rows_in_one_statement_committed_at_once_and_its_session_commits_as_before():
    from django.test.utils import CaptureQueriesContext

    entries = [OutboxEntry.objects.create(lead=LeadFactory(), kind="delivery") for _ in range(3)]

    with CaptureQueriesContext(connection) as queries:
        claimed, token = outbox_module._claim([entries[0].pk], ["delivery"], limit=2)

    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["UPDATE"]
    assert [entry.pk for entry in claimed] == [entries[0].pk, entries[1].pk]
    # Seen by every other connection: the claim is committed, under its token.
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM leads_outboxentry WHERE status = 'processing' AND claimed_until = %s", [token]
            )
            assert sorted(row[0] for row in cursor.fetchall()) == [entries[0].pk, entries[1].pk]
    finally:
        other.close()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # the claim's own setting ended with it

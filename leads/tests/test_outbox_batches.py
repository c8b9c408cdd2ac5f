"""Batch drains of the outbox against a real local buyer: claimed once across worker processes,
bounded concurrency over pooled connections, a killed worker's batch re-sent under the same ids,
one broker publish per queue and transaction, and buyers' inbox errors told apart."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leads.models import Delivery, DeliveryAttempt, DeliveryDestination, DeliveryRoute, Lead, OutboxEntry, Postback
from leads.services import outbox as outbox_module
from leads.services.outbox import follow_up_kind, outbox_drain, outbox_sweep, register_follow_up
from leads.services.publish_window import PublishWindow
from leads.services.signing import destination_rotate_secret
from leads.tasks import process_outbox_batch_task
from leads.tests.factories import LeadFactory
from leads.tests.test_outbox import configure_celery, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]


class LocalBuyer:
    """A buyer's server on 127.0.0.1: records each lead's webhook id and each postback's click id,
    counts requests in flight, and holds leads whose email contains "hold" until released."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.received: list[tuple[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        buyer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real buyer's server

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                buyer._serve(self, ("lead", self.headers["webhook-id"]), hold=b"hold" in body)

            def do_GET(self):
                click_id = parse_qs(urlsplit(self.path).query)["click"][0]
                buyer._serve(self, ("postback", click_id), hold=False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _serve(self, handler, seen: tuple[str, str], *, hold: bool) -> None:
        with self.lock:
            self.received.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if hold:
                self.release.wait(30)
            time.sleep(self.delay)
            answer = b'{"status":"accepted"}'
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
        finally:
            with self.lock:
                self.in_flight -= 1

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def buyer(settings):
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    server = LocalBuyer()
    yield server
    server.close()


def sold_leads(buyer: LocalBuyer, count: int, *, email: str = "person{n}@example.com") -> list[Delivery]:
    """`count` sellable leads, each with a delivery to the buyer waiting in the outbox."""
    campaign = CampaignFactory(
        traffic_source__postback_url_template=buyer.url("/postback?click={click_id}&payout={payout}")
    )
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Local buyer", url=buyer.url("/leads")
    )
    destination_rotate_secret(destination=destination)
    route = DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    leads = [LeadFactory(campaign=campaign, email=email.format(n=n), click_id=f"click-{n}") for n in range(count)]
    deliveries = Delivery.objects.bulk_create(
        Delivery(lead=lead, destination=destination, route=route, currency="USD") for lead in leads
    )
    OutboxEntry.objects.bulk_create(
        OutboxEntry(lead_id=delivery.lead_id, kind="delivery", payload={"delivery": delivery.pk})
        for delivery in deliveries
    )
    return deliveries


def database_url() -> str:
    database = connection.settings_dict
    if connection.vendor == "postgresql":
        host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
        return f"postgres://{database['USER']}@{host}:{port}/{database['NAME']}"
    return f"sqlite:///{database['NAME']}"


DRAIN = """
import django
django.setup()
from django.conf import settings
from leads.services import outbox as outbox_module
from leads.services.outbox import follow_up_kind, outbox_drain, register_follow_up
from leads.services.publish_window import PublishWindow
import os
keep_going = os.environ.get("DRAIN_KEEP_GOING") == "1"  # as the Celery task drains
ran, idle = 0, 0
while idle < 3:
    done = sum(
        len(outbox_drain(queue=queue, top_up=True, keep_going=keep_going))
        for queue in (None, settings.PARTNER_CALLS_QUEUE)
    )
    ran, idle = ran + done, (0 if done else idle + 1)
print(ran, flush=True)
"""


def worker(**env) -> subprocess.Popen:
    """A worker process draining the outbox of the test database until nothing is due."""
    return subprocess.Popen(
        [sys.executable, "-c", DRAIN],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "leadcrm.settings_test",
            "DATABASE_URL": database_url(),
            "DELIVERY_ALLOWED_HOSTS": "127.0.0.1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(connection.vendor != "postgresql", reason="FOR UPDATE SKIP LOCKED is PostgreSQL's")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_drain_two_thousand_mixed_rows_each_exactly_once(buyer):
    deliveries = sold_leads(buyer, 800)
    leads = [delivery.lead for delivery in deliveries]
    postbacks = Postback.objects.bulk_create(
        Postback(lead=lead, event="valid", payout=Decimal("1.50"), currency="USD") for lead in leads[:600]
    )
    OutboxEntry.objects.bulk_create(
        [
            *(OutboxEntry(lead=p.lead, kind="postback", payload={"postback": p.pk}) for p in postbacks),
            *(OutboxEntry(lead=lead, kind="assignment") for lead in leads[:600]),
        ]
    )
    assert OutboxEntry.objects.count() == 2000

    workers = [worker(), worker()]
    outputs = [process.communicate(timeout=300) for process in workers]

    ran = [int(out.strip() or 0) for out, _ in outputs]
    assert all(process.returncode == 0 for process in workers), [err[-3000:] for _, err in outputs]
    assert sum(ran) == 2000 and min(ran) > 0, ran  # both took part, and no row ran twice
    assert set(OutboxEntry.objects.values_list("status", "attempts")) == {("done", 1)}
    received = Counter(buyer.received)
    assert len(received) == 1400 and set(received.values()) == {1}  # each call made once
    assert {("lead", d.webhook_id) for d in deliveries} | {("postback", f"click-{n}") for n in range(600)} == set(
        received
    )
    assert Delivery.objects.filter(status="accepted").count() == 800
    assert Postback.objects.filter(status="sent").count() == 600
    assert DeliveryAttempt.objects.count() == 1400


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_batch_leaves_only_its_unfinished_rows_which_go_again_under_their_ids(buyer, settings):
    held = sold_leads(buyer, 5, email="hold{n}@example.com")
    quick = sold_leads(buyer, 5, email="quick{n}@example.com")
    process = worker(OUTBOX_CLAIM_SECONDS="3", PARTNER_CALLS_PER_DESTINATION="10")
    try:
        deadline = time.monotonic() + 60
        while OutboxEntry.objects.filter(status="done").count() < 5:  # the quick ones are recorded
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        while sum(1 for kind, _ in buyer.received if kind == "lead") < 10:  # the held ones are in flight
            assert time.monotonic() < deadline, buyer.received
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    assert set(OutboxEntry.objects.filter(status="done").values_list("payload__delivery", flat=True)) == {
        d.pk for d in quick
    }
    assert OutboxEntry.objects.filter(status="processing").count() == 5  # claimed by the dead worker
    buyer.release.set()
    time.sleep(3.2)  # its claim runs out
    # A draining worker leaves them alone: were one of them what killed the worker, it would kill this one.
    assert outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True) == {}

    assert outbox_sweep() == 5  # each goes alone, in a task of its own (run at once here: eager Celery)

    assert set(OutboxEntry.objects.filter(status="done").values_list("lost_claims", flat=True)) == {0, 1}
    assert OutboxEntry.objects.filter(lost_claims=1).count() == 5
    received = Counter(webhook_id for kind, webhook_id in buyer.received if kind == "lead")
    assert {d.webhook_id: received[d.webhook_id] for d in quick} == {d.webhook_id: 1 for d in quick}
    assert {d.webhook_id: received[d.webhook_id] for d in held} == {d.webhook_id: 2 for d in held}
    assert Delivery.objects.filter(status="accepted").count() == 10
    assert set(OutboxEntry.objects.values_list("status", flat=True)) == {"done"}


@pytest.mark.slow
@pytest.mark.skipif(connection.vendor != "postgresql", reason="FOR UPDATE SKIP LOCKED is PostgreSQL's")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_draining_worker_killed_mid_drain_sent_one_batch_and_the_next_goes_out_once_under_its_ids(buyer, settings):
    held = sold_leads(buyer, 5, email="hold{n}@example.com")  # the first batch: the buyer keeps them waiting
    queued = sold_leads(buyer, 5, email="next{n}@example.com")  # the next batch: claimed while they wait
    process = worker(
        OUTBOX_CLAIM_SECONDS="3", OUTBOX_BATCH_SIZE="5", PARTNER_CALLS_PER_DESTINATION="10", DRAIN_KEEP_GOING="1"
    )
    try:
        deadline = time.monotonic() + 60
        while OutboxEntry.objects.filter(status="processing").count() < 10:  # both batches claimed
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        time.sleep(1.5)  # were the next batch to send before the first is written, it would now
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    sent = Counter(webhook_id for kind, webhook_id in buyer.received if kind == "lead")
    assert sent == {d.webhook_id: 1 for d in held}  # only the batch whose results were not written yet
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    buyer.release.set()
    time.sleep(3.2)  # the dead worker's claims run out

    assert outbox_sweep() == 10  # each goes alone, in a task of its own (run at once here: eager Celery)

    assert set(OutboxEntry.objects.values_list("status", "lost_claims")) == {("done", 1)}
    sent = Counter(webhook_id for kind, webhook_id in buyer.received if kind == "lead")
    assert sent == {**{d.webhook_id: 2 for d in held}, **{d.webhook_id: 1 for d in queued}}
    assert Delivery.objects.filter(status="accepted").count() == 10
    assert DeliveryAttempt.objects.count() == 10  # each answer recorded once


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_draining_task_goes_on_with_the_next_batches_within_the_per_destination_bound(settings):
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOX_BATCH_SIZE, settings.PARTNER_CALLS_PER_DESTINATION = 4, 3
    slow = LocalBuyer(delay=0.05)
    try:
        deliveries = sold_leads(slow, 11)

        one_batch = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True)
        the_rest = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True, keep_going=True)

        assert list(one_batch.values()) == ["done"] * 4
        assert sorted(the_rest.values()) == ["done"] * 7  # two more batches, in one call
        assert slow.max_in_flight == 3  # batches in flight together share the bound to one buyer
        assert Counter(webhook_id for _, webhook_id in slow.received) == {d.webhook_id: 1 for d in deliveries}
        assert set(OutboxEntry.objects.values_list("status", "attempts")) == {("done", 1)}
    finally:
        slow.close()


@pytest.mark.django_db
def test_a_draining_task_runs_batches_that_do_not_prepare_first_one_after_another(settings):
    settings.OUTBOX_BATCH_SIZE = 2
    at_once, most = [0], [0]

    def auctions_waiting_on_their_pings(entries, deadline):
        at_once[0] += 1
        most[0] = max(most[0], at_once[0])
        try:
            yield from [None] * 3  # an auction waits on its pings, started in its first step
            yield from ((entry, None) for entry in entries)
        finally:
            at_once[0] -= 1

    previous = follow_up_kind("auction")
    register_follow_up(replace(previous, handle_batch=auctions_waiting_on_their_pings))
    try:
        lead = LeadFactory()
        OutboxEntry.objects.bulk_create(OutboxEntry(lead=lead, kind="auction") for _ in range(5))

        outcomes = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True, keep_going=True)
    finally:
        register_follow_up(previous)

    assert list(outcomes.values()) == ["done"] * 5  # three batches, in one call
    assert most == [1]  # never two batches' auctions at once


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_calls_in_parallel_within_the_per_destination_bound(settings):
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.PARTNER_CALLS_PER_DESTINATION = 3
    slow = LocalBuyer(delay=0.2)
    try:
        deliveries = sold_leads(slow, 12)

        outcomes = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True)

        assert sorted(outcomes) == sorted(OutboxEntry.objects.filter(kind="delivery").values_list("pk", flat=True))
        assert set(outcomes.values()) == {"done"}
        assert slow.max_in_flight == 3  # in parallel, and never more than the bound to one buyer
        assert Delivery.objects.filter(pk__in=[d.pk for d in deliveries], status="accepted").count() == 12
    finally:
        slow.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_calls_waiting_for_a_busy_buyer_hold_no_thread_another_buyer_s_calls_need(settings):
    """With 3 call threads and at most 2 calls at once to a buyer, a buyer that holds its answers
    leaves the third thread to the next buyer's calls: they are answered while the first buyer's
    are still held (the next buyer then lets those go)."""
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.PARTNER_CALLS_CONCURRENCY, settings.PARTNER_CALLS_PER_DESTINATION = 3, 2
    holding, quick = LocalBuyer(), LocalBuyer()
    serve = quick._serve

    def serve_then_release_the_other(handler, seen, *, hold):
        serve(handler, seen, hold=hold)
        if len(quick.received) == 2:
            holding.release.set()

    quick._serve = serve_then_release_the_other
    gave_up = []
    # Were the third thread waiting on the holding buyer, the quick buyer's calls would never start.
    give_up = threading.Timer(10, lambda: (gave_up.append(True), holding.release.set()))
    give_up.start()
    try:
        sold_leads(holding, 6, email="hold{n}@example.com")  # first in the batch (the claim is in id order)
        sold_leads(quick, 2)

        outcomes = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True)
    finally:
        give_up.cancel()
        holding.close()
        quick.close()

    assert list(outcomes.values()) == ["done"] * 8
    assert gave_up == []  # the quick buyer's answers let the holding buyer go, not the timer
    assert (len(holding.received), holding.max_in_flight) == (6, 2)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_past_its_time_puts_back_what_it_did_not_start(buyer, settings):
    settings.PARTNER_CALLS_PER_DESTINATION = 1
    settings.OUTBOX_TASK_TIME_LIMIT = 0  # no time: the batch starts nothing
    sold_leads(buyer, 3)

    outcomes = outbox_drain(queue=settings.PARTNER_CALLS_QUEUE, top_up=True)

    assert set(outcomes.values()) == {"not started"}
    assert buyer.received == []
    # Back in the queue, due now, the attempt not counted.
    assert set(OutboxEntry.objects.values_list("status", "attempts")) == {("pending", 0)}


@pytest.fixture
def published(campaign, monkeypatch) -> list:
    """The tasks sent to the broker, as (arguments, queue), for leads of a campaign sold to a buyer."""
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Buyer", url="https://buyer.example/leads"
    )
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    sent: list = []
    monkeypatch.setattr(
        process_outbox_batch_task,
        "apply_async",
        lambda args, queue=None, countdown=None: sent.append((args, queue)),
    )
    return sent


@pytest.mark.django_db
def test_a_captured_lead_costs_one_publish_per_queue(capture, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lead = capture(email="one@example.com", phone="+16505551212", country="US", consent=True)

    kinds = dict(lead.outbox_entries.values_list("pk", "kind"))
    assert sorted(kinds.values()) == ["assignment", "delivery", "nurture_enrollment"]
    assert sorted((sorted(kinds[pk] for pk in ids), queue or "") for (ids, queue), _ in published) == sorted(
        [(["assignment", "nurture_enrollment"], ""), (["delivery"], "deliveries")]
    )


def test_a_queue_published_within_the_window_has_its_next_ids_sent_as_one_task_when_it_ends():
    sent: list[tuple[float, list]] = []
    window = PublishWindow(lambda batches: sent.append((time.monotonic(), batches)), lambda: 0.3)

    window.send([("deliveries", 100, [1])])  # a lone lead: at once
    window.send([("deliveries", 100, [2]), (None, 500, [3])])  # deliveries held; the other queue at once
    window.send([("deliveries", 100, [4])])

    assert [batches for _, batches in sent] == [[("deliveries", 100, [1])], [(None, 500, [3])]]
    assert wait_for(lambda: len(sent) == 3, seconds=5)
    assert sent[2][1] == [("deliveries", 100, [2, 4])]  # both held ids, one task
    assert sent[2][0] - sent[0][0] >= 0.3  # not before the window ended
    window.send([("deliveries", 100, [5])])
    assert len(sent) == 3  # published 0.3 s ago or less: held again
    window.flush()
    assert sent[3][1] == [("deliveries", 100, [5])]


@pytest.mark.django_db
def test_leads_captured_within_the_window_wake_each_queue_once_more_and_lose_no_entry(
    capture, published, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_PUBLISH_WINDOW_SECONDS = 5.0  # longer than the test: what is held is flushed below
    eager = process_outbox_batch_task.app.conf.task_always_eager
    configure_celery(task_always_eager=False)  # an eager task runs in apply_async: never held
    try:
        leads = []
        for index in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                leads.append(
                    capture(email=f"lead{index}@example.com", phone=f"+1650555121{index}", country="US", consent=True)
                )
        first_publishes = list(published)
        outbox_module._publish_window.flush()
    finally:
        configure_celery(task_always_eager=eager)

    # The first lead woke both queues at once; the next four went as one task per queue.
    assert len(first_publishes) == 2
    assert sorted(queue or "" for _, queue in published) == ["", "", "deliveries", "deliveries"]
    entries = OutboxEntry.objects.filter(lead__in=leads)
    assert sorted(pk for (ids, _), _ in published for pk in ids) == sorted(entries.values_list("pk", flat=True))
    assert entries.count() == 15  # assignment, delivery and enrollment of each lead


def _refusing_smtp(code: str):
    """A real SMTP server that refuses every recipient with `code`."""
    import asyncio
    import socket

    from aiosmtpd.controller import Controller

    class Refuse:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return code

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Refuse(), hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    return controller


@pytest.mark.parametrize(
    "reply, delivery_status, entry_status",
    [
        ("550 5.1.1 No such mailbox", "failed", "failed"),  # the buyer's address is wrong: fix it, redeliver
        ("451 4.3.0 Try again later", "pending", "pending"),  # the server will take it later
    ],
)
@pytest.mark.django_db
def test_a_buyers_inbox_tells_a_permanent_refusal_from_a_temporary_one(settings, reply, delivery_status, entry_status):
    server = _refusing_smtp(reply)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        campaign = CampaignFactory()
        destination = DeliveryDestination.objects.create(
            advertiser=campaign.offer.advertiser, name="Inbox", kind="email", email_to=["sales@buyer.example"]
        )
        DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
        lead = LeadFactory(campaign=campaign)
        entry = OutboxEntry.objects.create(lead=lead, kind="delivery")

        assert outbox_drain(entry_ids=[entry.pk]) == {entry.pk: "failed" if entry_status == "failed" else "retry"}
    finally:
        server.stop()

    delivery = Delivery.objects.get(lead=lead)
    entry.refresh_from_db()
    assert (delivery.status, entry.status) == (delivery_status, entry_status)
    assert reply.split(" ", 1)[0] in delivery.reason
    assert Lead.objects.get(pk=lead.pk).validity == "valid"  # nothing about the lead changed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the production database's plan")
@pytest.mark.parametrize("backlog", [0, 20_000], ids=["no backlog", "another queue's backlog"])
def test_a_claim_reads_only_its_own_kinds_due_rows_whatever_another_queues_backlog(db, backlog):
    """A worker claims its queue's kinds through outbox_due_by_kind (kind first): a tick's backlog of
    another queue's rows (100,000 nurture emails in production) is not read by every claim."""
    from django.test.utils import CaptureQueriesContext

    leads = LeadFactory.create_batch(10)
    past = timezone.now() - timedelta(minutes=1)
    rows = [OutboxEntry(lead=leads[n % 10], kind="delivery", next_attempt_at=past) for n in range(50)]
    # The other queue's rows came due first, as a tick's backlog does.
    earlier = past - timedelta(hours=1)
    rows += [OutboxEntry(lead=leads[n % 10], kind="postback", next_attempt_at=earlier) for n in range(backlog)]
    OutboxEntry.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxEntry._meta.db_table}")  # as autovacuum would, for the planner
    with CaptureQueriesContext(connection) as queries:
        claimed, _ = outbox_module._claim([], ["delivery"], 20)
    claim = next(query["sql"] for query in queries if query["sql"].startswith("UPDATE"))

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {claim}")
        plan = cursor.fetchone()[0][0]["Plan"]
    # The scan that looks for due rows of the claimed kinds (the UPDATE then finds each row by its id).
    (search,) = (node for node in _plan_nodes(plan) if "kind" in node.get("Index Cond", "") + node.get("Filter", ""))
    read = search["Actual Rows"] * search["Actual Loops"] + search.get("Rows Removed by Filter", 0)
    assert len(claimed) == 20 and {entry.kind for entry in claimed} == {"delivery"}
    assert read <= 50, search  # the due deliveries at most, none of the other queue's rows
    if backlog:
        assert search.get("Index Name") == "outbox_due_by_kind", search


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)

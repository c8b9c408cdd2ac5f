"""Delivery to a buyer through real infrastructure: a private Redis broker, a real Celery worker
process on the test database and a local HTTP server playing the buyer.

Two failures the outbox promises to survive, with 200 leads posted through the partner API:
- the broker is down while leads arrive: every request still answers 201 quickly, and once Redis is
  back the sweeper (what the beat task runs every minute) gets every lead delivered exactly once;
- the worker is SIGKILLed in the middle of a send: a new worker and the sweeper finish the run, each
  lead keeps one Delivery and one webhook id, and only the send in flight at the kill is repeated.

PostgreSQL and a redis-server binary only; each test starts its own Redis on a free port.
"""

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from werkzeug import Response

from leadcrm.celery import app as celery_app
from leads.models import Delivery, DeliveryDestination, DeliveryRoute, Lead, OutboxEntry, Partner
from leads.services import outbox_sweep
from leads.services.partners import api_key_create
from leads.services.signing import destination_rotate_secret
from leads.tests.test_outbox import configure_celery, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
LEADS = "/api/v1/leads/"
LEAD_COUNT = 200
CLAIM_SECONDS = 10  # the worker's OUTBOX_CLAIM_SECONDS: a killed task's entry is free again after this
# The transport options settings.py uses for a Redis broker (bounded socket waits).
REDIS_SERVER = shutil.which("redis-server")
REDIS_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5, "visibility_timeout": 3600}

pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="needs the redis-server binary on PATH"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.slow,
]


# --- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, *, kill: bool = False) -> None:
    if process is None or process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class RedisServer:
    """A private redis-server on one port, without persistence, that can die and come back."""

    def __init__(self, port: int, log: Path):
        self.port, self.log, self.process = port, log, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        assert wait_for(answers, seconds=10), self.log.read_text()

    def kill(self) -> None:
        stop_process(self.process, kill=True)


class Worker:
    """`celery worker` on the test database, the private Redis and both outbox queues."""

    def __init__(self, name: str, env: dict, log: Path):
        self.name, self.env, self.log, self.process = name, env, log, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "leadcrm", "worker", "--pool", "solo"),
                *("--queues", "celery,deliveries", "--hostname", f"{self.name}@%h"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"),
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            return "ready." in self.log.read_text()

        assert wait_for(ready, seconds=60), self.log.read_text()

    def sigkill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process)


class Infrastructure:
    def __init__(self, tmp_path: Path, buyer_host: str):
        self.tmp_path = tmp_path
        self.redis = RedisServer(free_port(), tmp_path / "redis.log")
        database = connection.settings_dict
        database_url = (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        )
        self.worker_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "leadcrm.settings_test",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": self.redis.url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DELIVERY_ALLOWED_HOSTS": buyer_host,
            "OUTBOX_CLAIM_SECONDS": str(CLAIM_SECONDS),
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: list[Worker] = []

    def start_worker(self) -> Worker:
        name = f"w{len(self.workers) + 1}"
        worker = Worker(name, self.worker_env, self.tmp_path / f"worker-{name}.log")
        self.workers.append(worker)
        worker.start()
        return worker

    def logs(self) -> str:
        """Every worker's log (tail), for assertion messages and the report."""
        parts = []
        for worker in self.workers:
            text = worker.log.read_text() if worker.log.exists() else ""
            parts.append(f"--- {worker.name} ---\n{text[-6000:]}")
        return "\n".join(parts)


@pytest.fixture
def infrastructure(tmp_path, httpserver):
    """A private Redis, this process's Celery pointed at it (not eager), and a worker; all cleaned up."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a worker process and this test share the database concurrently")
    infra = Infrastructure(tmp_path, httpserver.host)
    environment_broker = os.environ.get("CELERY_BROKER_URL")
    old = {
        "task_always_eager": celery_app.conf.task_always_eager,
        "broker_url": celery_app.conf.broker_url,
        "broker_transport_options": celery_app.conf.broker_transport_options,
    }
    try:
        infra.redis.start()
        configure_celery(
            task_always_eager=False, broker_url=infra.redis.url, broker_transport_options=REDIS_TRANSPORT_OPTIONS
        )
        infra.start_worker()
        yield infra
    finally:
        for worker in infra.workers:
            worker.stop()
        infra.redis.kill()
        configure_celery(**old)
        if environment_broker is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = environment_broker


# --- the buyer -----------------------------------------------------------------------------------
class Buyer:
    """Answers 200 to every POST /leads after `delay` seconds and records (webhook id, body).

    `on_request(n)` (if set) runs inside the request handler for the n-th request, before answering.
    """

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.received: list[tuple[str, bytes]] = []
        self.on_request = None
        self._lock = threading.Lock()

    def __call__(self, request):
        with self._lock:
            self.received.append((request.headers.get("webhook-id", ""), request.get_data()))
            count = len(self.received)
        if self.on_request:
            self.on_request(count)
        time.sleep(self.delay)
        return Response('{"status": "ok"}', status=200, content_type="application/json")

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def ids(self) -> collections.Counter:
        with self._lock:
            return collections.Counter(webhook_id for webhook_id, _ in self.received)

    def bodies(self, webhook_id: str) -> list[bytes]:
        with self._lock:
            return [body for received_id, body in self.received if received_id == webhook_id]


@pytest.fixture
def buyer(campaign, httpserver, settings):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    buyer = Buyer()
    httpserver.expect_request("/leads", method="POST").respond_with_handler(buyer)
    destination = DeliveryDestination.objects.create(
        advertiser=campaign.offer.advertiser, name="Acme CRM", url=httpserver.url_for("/leads")
    )
    destination_rotate_secret(destination=destination)  # signed, as in production
    DeliveryRoute.objects.create(offer=campaign.offer, destination=destination)
    return buyer


@pytest.fixture
def partner_client(campaign):
    cache.clear()  # the rate limit counts in the cache
    partner = Partner.objects.create(name="Affiliate", rate_limit_per_minute=100_000)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    yield client
    cache.clear()


def post_lead(client: APIClient, campaign, i: int) -> tuple[float, dict]:
    started = time.monotonic()
    response = client.post(
        LEADS,
        {"campaign": campaign.slug, "email": f"buyer{i}@example.com", "first_name": "Ann", "country": "US"},
        format="json",
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.content
    return elapsed, response.json()


def accepted_deliveries() -> int:
    return Delivery.objects.filter(status=Delivery.Status.ACCEPTED).count()


def sweep_until(condition, *, seconds: float, every: float = 5.0) -> tuple[bool, int]:
    """Run the sweeper (what the beat task does each minute) every `every` s until `condition`."""
    deadline, sweeps = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        outbox_sweep()
        sweeps += 1
        if wait_for(condition, seconds=min(every, max(deadline - time.monotonic(), 0))):
            return True, sweeps
    return condition(), sweeps


def assert_each_lead_delivered_once(buyer: Buyer, infra: Infrastructure) -> dict[str, int]:
    """Every lead has one accepted Delivery; the buyer saw exactly the Deliveries' webhook ids."""
    leads = Lead.objects.filter(email__startswith="buyer")
    assert leads.count() == LEAD_COUNT
    assert Delivery.objects.count() == LEAD_COUNT
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.ACCEPTED}
    assert not leads.exclude(deliveries__status=Delivery.Status.ACCEPTED).exists()
    expected = {delivery.webhook_id for delivery in Delivery.objects.all()}
    seen = buyer.ids()
    assert set(seen) == expected, infra.logs()  # no lead was ever sent under a second id
    entries = OutboxEntry.objects.filter(kind=OutboxEntry.Kind.DELIVERY, lead__in=leads)
    assert entries.count() == LEAD_COUNT
    # A batch writes its entries' results a moment after its deliveries' own.
    wait_for(lambda: not entries.exclude(status=OutboxEntry.Status.DONE).exists(), seconds=10)
    assert set(entries.values_list("status", flat=True)) == {OutboxEntry.Status.DONE}
    return {webhook_id: count for webhook_id, count in seen.items() if count > 1}


# --- the tests -----------------------------------------------------------------------------------
def test_broker_outage_while_leads_arrive_loses_nothing_and_delivers_each_lead_once(
    infrastructure, buyer, partner_client, campaign
):
    infra = infrastructure
    infra.redis.kill()

    started = time.monotonic()
    timings = [post_lead(partner_client, campaign, i)[0] for i in range(LEAD_COUNT)]
    outage_total = time.monotonic() - started

    print(  # the report's figures; shown with -s
        f"\n[broker outage] {LEAD_COUNT} API posts with Redis down: total {outage_total:.1f} s, "
        f"mean {sum(timings) / len(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"
    )
    assert outage_total < 120
    assert max(timings) < 5, "one request hung on the dead broker"
    assert Lead.objects.filter(email__startswith="buyer").count() == LEAD_COUNT
    assert not Lead.objects.exclude(validity="valid").exists()
    assert buyer.count() == 0 and not Delivery.objects.exists()
    pending = OutboxEntry.objects.filter(kind=OutboxEntry.Kind.DELIVERY)
    assert pending.count() == LEAD_COUNT
    assert set(pending.values_list("status", "attempts")) == {(OutboxEntry.Status.PENDING, 0)}

    infra.redis.start()  # same port, empty: whatever was not sent is only in the outbox
    restarted = time.monotonic()
    done, sweeps = sweep_until(lambda: accepted_deliveries() == LEAD_COUNT, seconds=120)
    recovery = time.monotonic() - restarted
    print(
        f"[broker outage] after Redis came back: {LEAD_COUNT} deliveries accepted in {recovery:.1f} s, "
        f"{sweeps} sweep(s); buyer requests: {buyer.count()}"
    )
    assert done, f"{accepted_deliveries()} of {LEAD_COUNT} accepted\n{infra.logs()}"

    repeated = assert_each_lead_delivered_once(buyer, infra)
    assert repeated == {}, infra.logs()
    assert buyer.count() == LEAD_COUNT
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


def test_a_worker_killed_mid_send_leaves_each_lead_one_delivery_under_one_webhook_id(
    infrastructure, buyer, partner_client, campaign
):
    infra = infrastructure
    buyer.delay = 0.02
    first_worker = infra.workers[0]
    kill_at = 30
    in_flight: dict = {}
    killed = threading.Event()

    def kill_during_the_send(count: int) -> None:
        # Inside the buyer's handler for request `kill_at`: the buyer has the lead, the worker has no
        # answer yet. SIGKILL now, so the kill lands mid-send, then answer (to nobody).
        if count == kill_at and not killed.is_set():
            in_flight["id"] = buyer.received[count - 1][0]  # no database work in the server's thread
            first_worker.sigkill()
            killed.set()

    buyer.on_request = kill_during_the_send

    started = time.monotonic()
    for i in range(LEAD_COUNT):
        post_lead(partner_client, campaign, i)
    submitted = time.monotonic() - started
    assert wait_for(killed.is_set, seconds=60), f"the buyer got {buyer.count()} requests\n{infra.logs()}"
    at_kill = buyer.count()
    print(
        f"\n[worker SIGKILL] {LEAD_COUNT} leads posted in {submitted:.1f} s; worker killed during buyer request "
        f"#{kill_at} ({accepted_deliveries()} accepted before); buyer had {at_kill} requests after the kill"
    )
    assert at_kill < LEAD_COUNT
    assert first_worker.process.returncode == -signal.SIGKILL
    time.sleep(0.5)  # requests the dead worker had already written reach the buyer now, or never
    # The sends the buyer has but the worker never recorded (in flight, or answered and not yet
    # written): their entries are still claimed. They all belong to the batch it was running.
    received = {webhook_id for webhook_id, _ in buyer.received}
    unanswered = [
        delivery
        for delivery in Delivery.objects.filter(status=Delivery.Status.PENDING, attempts=0)
        if delivery.webhook_id in received
    ]
    assert in_flight["id"] in {delivery.webhook_id for delivery in unanswered}
    assert 1 <= len(unanswered) <= settings.OUTBOX_BATCH_SIZE
    entries = OutboxEntry.objects.filter(lead__deliveries__in=unanswered, kind=OutboxEntry.Kind.DELIVERY)
    assert set(entries.values_list("status", "attempts")) == {(OutboxEntry.Status.PROCESSING, 1)}
    assert sorted(entries.values_list("payload__delivery", flat=True)) == sorted(d.pk for d in unanswered)

    restart = time.monotonic()
    infra.start_worker()
    done, sweeps = sweep_until(lambda: accepted_deliveries() == LEAD_COUNT, seconds=60)
    recovery = time.monotonic() - restart
    print(
        f"[worker SIGKILL] new worker + sweeper: all {LEAD_COUNT} accepted {recovery:.1f} s after the restart "
        f"({sweeps} sweep(s), claim {CLAIM_SECONDS} s); buyer requests: {buyer.count()}"
    )
    assert done, f"{accepted_deliveries()} of {LEAD_COUNT} accepted\n{infra.logs()}"

    repeated = assert_each_lead_delivered_once(buyer, infra)
    print(f"[worker SIGKILL] re-sends: {sum(n - 1 for n in repeated.values())} ({repeated})")
    # Only the sends in flight at the kill went out twice, each under its one webhook id, with one body.
    assert set(repeated) <= {delivery.webhook_id for delivery in unanswered}, infra.logs()
    assert all(n == 2 for n in repeated.values()), infra.logs()
    assert all(len(set(buyer.bodies(webhook_id))) == 1 for webhook_id in repeated)
    assert buyer.count() == LEAD_COUNT + len(repeated)
    for delivery in unanswered:
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.attempt_log.count()) == (1, 1)  # the lost answer left no record
    # Each entry was claimed again once the claim ran out.
    assert set(entries.values_list("status", "attempts")) == {(OutboxEntry.Status.DONE, 2)}

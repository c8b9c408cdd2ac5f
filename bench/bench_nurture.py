"""Nurture: one tick over N due enrollments, then their emails sent through the outbox as a worker
does (outbox_drain, one batch of the kind's batch size, NURTURE_EMAIL_BATCH_SIZE, at a time, each
over one SMTP connection, as `dispatch` sends them to workers), to a
local aiosmtpd (bench/sinks.py, a process of its own) through Django's SMTP backend; against a floor
of a bare loop sending the same messages, rendered beforehand by the project, over one smtplib
connection to the same server (run before and after the project; the better counts). The issue's
targets are the sending's ratio (the drain against that loop) and the tick's own rate; tick and drain
one after the other are reported too. And the cost of a tick when a million enrollments exist and
none is due.

Sizes come from BENCH_NURTURE_DUE (default 10,000; the issue's figure, and `make bench`'s, is
100,000), BENCH_NURTURE_FLOOR (messages the floor sends, default 20,000) and BENCH_NURTURE_IDLE
(default 1,000,000).
"""

import os
import smtplib
import time
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench.figures import Figure
from bench.servers import sink
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead, OutboxEntry
from leads.services.outbox import batch_size_of, outbox_drain
from nurture.follow_ups import EMAIL as NURTURE_EMAIL
from nurture.models import Enrollment, Flow, FlowStep, NurtureMessage
from nurture.services.engine import nurture_tick
from nurture.services.sending import build_email

DUE = int(os.environ.get("BENCH_NURTURE_DUE", "10000"))
FLOOR_MESSAGES = int(os.environ.get("BENCH_NURTURE_FLOOR", "20000"))
IDLE = int(os.environ.get("BENCH_NURTURE_IDLE", "1000000"))
SUBJECT = "Your solar quote, {{ lead.first_name }}"
TEXT = "Hello {{ lead.first_name }},\nyour quote for {{ offer.name }} is ready: https://example.com/quote\n"
HTML = '<p>Hello {{ lead.first_name }},</p><p>Your quote for {{ offer.name }} is <a href="https://example.com/quote">ready</a>.</p>'


def _leads(campaign, count: int, prefix: str) -> list[int]:
    now = timezone.now()
    Lead.objects.bulk_create(
        (
            Lead(
                door="api",
                campaign=campaign,
                offer=campaign.offer,
                traffic_source=campaign.traffic_source,
                email=f"{prefix}{index}@example.com",
                first_name="Jo",
                country="US",
                lead_type="hard",
                validity="valid",
                qualification="qualified",
                score=50,
                consent=True,  # flows email only leads with marketing consent
                created_at=now,
            )
            for index in range(count)
        ),
        batch_size=5000,
    )
    return list(Lead.objects.filter(email__startswith=prefix).values_list("pk", flat=True))


def _rendered(message_ids: list[int]) -> list[tuple[str, list[str], bytes]]:
    """The messages as the project builds them, as the SMTP backend puts them on the wire."""
    messages = NurtureMessage.objects.select_related("lead__campaign", "lead__offer", "step", "enrollment__flow")
    rendered = []
    for message in messages.filter(pk__in=message_ids):
        email = build_email(message)
        rendered.append((email.from_email, email.recipients(), email.message().as_bytes(linesep="\r\n")))
    return rendered


def _floor(port: int, rendered: list[tuple[str, list[str], bytes]]) -> float:
    """Messages per second of a bare loop sending them over one SMTP connection."""
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
    for sender, recipients, data in rendered:
        smtp.sendmail(sender, recipients, data)
    smtp.quit()
    return len(rendered) / (time.perf_counter() - started)


def _drain(entry_ids: list[int]) -> float:
    """Seconds to send the entries as a worker does, a batch at a time. The worker's top-up has no
    room in a full batch; it is off so a last short one takes no other benchmark's due entries."""
    started = time.perf_counter()
    size = batch_size_of(NURTURE_EMAIL)
    for start in range(0, len(entry_ids), size):
        outcomes = outbox_drain(entry_ids=entry_ids[start : start + size])
        assert set(outcomes.values()) == {"done"}, outcomes
    return time.perf_counter() - started


def _smtp_settings(port: int):
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        NURTURE_QUIET_HOURS="00:00-00:00",
    )


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Bench nurture", kind="native")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Bench nurture"), name="Solar")
    campaign = Campaign.objects.create(name="Bench nurture", slug="bench-nurture", traffic_source=source, offer=offer)
    flow = Flow.objects.create(name="Bench flow", status=Flow.Status.ACTIVE)
    email = FlowStep.objects.create(
        flow=flow, position=0, kind="email", subject=SUBJECT, body_text=TEXT, body_html=HTML
    )
    FlowStep.objects.create(flow=flow, position=1, kind="wait", wait_minutes=2 * 1440)

    lead_ids = _leads(campaign, DUE, "due")
    past = timezone.now() - timedelta(minutes=1)
    Enrollment.objects.bulk_create(
        (Enrollment(flow=flow, lead_id=lead_id, step=email, next_run_at=past) for lead_id in lead_ids),
        batch_size=5000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE leads_lead, nurture_enrollment")

    with sink("smtp") as port, _smtp_settings(port):
        started = time.perf_counter()
        ran = nurture_tick()
        ticked = time.perf_counter() - started
        assert ran == DUE, (ran, DUE)
        entries = list(
            OutboxEntry.objects.filter(kind=NURTURE_EMAIL, lead__campaign=campaign)
            .order_by("pk")
            .values_list("pk", "payload")
        )
        assert len(entries) == DUE, (len(entries), DUE)
        rendered = _rendered([payload["message"] for _, payload in entries[:FLOOR_MESSAGES]])
        floor_before = _floor(port, rendered)
        drained = _drain([pk for pk, _ in entries])
        floor_after = _floor(port, rendered)
    sent = NurtureMessage.objects.filter(lead__campaign=campaign, status=NurtureMessage.Status.SENT).count()
    assert sent == DUE, (sent, DUE)
    floor = max(floor_before, floor_after)
    rate, drain_rate = DUE / (ticked + drained), DUE / drained
    print(
        f"nurture: one tick over {DUE:,} due enrollments in {ticked:.1f} s ({DUE / ticked:,.0f}/s), their emails "
        f"sent through the outbox in {drained:.1f} s ({drain_rate:,.0f}/s): {rate:,.0f} emails/s from tick to "
        f"sent vs {floor:,.0f}/s bare loop over one SMTP connection ({len(rendered):,} pre-rendered messages; "
        f"{floor_before:,.0f}/s before, {floor_after:,.0f}/s after) (sending's ratio {drain_rate / floor:.2f}; "
        f"tick then sending {rate / floor:.2f})"
    )
    # The two targets: sending against the bare sending loop, and the tick on its own.
    figures = [
        Figure(
            f"Nurture emails, outbox drain ({DUE:,})",
            drain_rate,
            "emails/s",
            floor,
            "bare loop, one SMTP connection, pre-rendered",
            0.5,
        ),
        Figure(f"Nurture tick ({DUE:,} due)", DUE / ticked, "enrollments/s", target=2000),
        Figure(f"Nurture emails, tick then drain ({DUE:,} due)", rate, "emails/s", floor, "the same loop"),
    ]
    if IDLE:
        figures.append(_idle(campaign))
    return figures


def _idle(campaign) -> Figure:
    """A million enrollments, none due: a tick reads only the partial index of due ones."""
    idle_flows = [Flow(name=f"Idle {n}", status=Flow.Status.ACTIVE) for n in range(max(IDLE // 10_000, 1))]
    Flow.objects.bulk_create(idle_flows)
    idle_flows = list(Flow.objects.filter(name__startswith="Idle "))
    steps = FlowStep.objects.bulk_create(FlowStep(flow=f, position=0, kind="wait", wait_minutes=60) for f in idle_flows)
    idle_leads = _leads(campaign, min(IDLE, 10_000), "idle")
    later = timezone.now() + timedelta(days=30)
    Enrollment.objects.bulk_create(
        (
            Enrollment(flow=step.flow, lead_id=lead_id, step=step, next_run_at=later)
            for step in steps
            for lead_id in idle_leads
        ),
        batch_size=10_000,
    )
    total_enrollments = Enrollment.objects.count()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE nurture_enrollment")
    best = float("inf")
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            assert nurture_tick() == 0
            best = min(best, time.perf_counter() - started)
    print(
        f"nurture: a tick with {total_enrollments:,} enrollments and none due: {best * 1000:.1f} ms, "
        f"{len(queries)} queries (index on next_run_at of active enrollments)"
    )
    return Figure(f"Nurture tick, none due of {total_enrollments:,}", best * 1000, "ms", lower_is_better=True)

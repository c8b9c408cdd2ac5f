"""Nurture tick: one tick over N due enrollments (emails rendered and handed to the locmem mail
backend through the outbox) against a floor of rendering and sending the same messages in a bare
loop; and the cost of a tick when a million enrollments exist and none is due.

Sizes come from BENCH_NURTURE_DUE (default 10,000; the issue's figure is 100,000) and
BENCH_NURTURE_IDLE (default 1,000,000).
"""

import os
import time
from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leads.models import Lead, OutboxEntry
from leads.services.outbox import outbox_process
from nurture.models import Enrollment, Flow, FlowStep
from nurture.services.engine import nurture_tick

DUE = int(os.environ.get("BENCH_NURTURE_DUE", "10000"))
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
                created_at=now,
            )
            for index in range(count)
        ),
        batch_size=5000,
    )
    return list(Lead.objects.filter(email__startswith=prefix).values_list("pk", flat=True))


def _floor(leads: list[Lead]) -> float:
    """Messages per second rendering the same templates and sending through the same backend."""
    subject, text, html = Template(SUBJECT), Template(TEXT), Template(HTML)
    started = time.perf_counter()
    for lead in leads:
        context = Context({"lead": lead, "offer": lead.offer})
        email = EmailMultiAlternatives(subject.render(context), text.render(context), to=[lead.email])
        email.attach_alternative(html.render(context), "text/html")
        email.send()
    return len(leads) / (time.perf_counter() - started)


def run(timed) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NURTURE_QUIET_HOURS = "00:00-00:00"
    mail.outbox = []
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
    floor = _floor(list(Lead.objects.filter(pk__in=lead_ids).select_related("offer")))
    mail.outbox = []

    started = time.perf_counter()
    ran = nurture_tick()
    ticked = time.perf_counter() - started
    entries = list(OutboxEntry.objects.filter(kind="nurture_email").values_list("pk", flat=True))
    for entry_id in entries:  # what the workers do with the tick's outbox entries
        outbox_process(entry_id=entry_id)
    total = time.perf_counter() - started
    assert ran == DUE and len(mail.outbox) == DUE, (ran, len(mail.outbox))
    rate = DUE / total
    print(
        f"nurture: one tick over {DUE:,} due enrollments: {ticked:.1f} s to run the steps "
        f"({DUE / ticked:,.0f}/s), {total:.1f} s with every email rendered and sent "
        f"({rate:,.0f} emails/s) vs {floor:,.0f}/s rendering and sending in a bare loop (ratio {rate / floor:.2f})"
    )

    # A million enrollments, none due: a tick reads only the partial index of due ones.
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

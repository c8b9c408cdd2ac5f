"""Sending over a real SMTP server that fails: bounces suppress and exit, temporary failures retry."""

import html
from datetime import timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leads.models import OutboxEntry
from leads.services import outbox_process
from leads.services.outbox import outbox_drain
from leads.tests.factories import LeadFactory
from nurture import follow_ups
from nurture.models import Enrollment, NurtureMessage, Suppression
from nurture.services import sending
from nurture.services.engine import nurture_tick
from nurture.services.enrollment import lead_enroll, suppress
from nurture.services.sending import MAX_SEND_ATTEMPTS, _template
from nurture.services.tracking import read_token

from .conftest import _free_port, email_step, link_path, open_pixel, parts, tracked_links, unsubscribe_link, wait_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann_in_two_flows(capture, make_flow):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    make_flow(wait_step(days=1), email_step(1, subject="Second flow"))
    ann = capture(email="ann@example.com", first_name="Ann")
    assert ann.enrollments.filter(status="active").count() == 2
    return ann


def _email_entry(message: NurtureMessage) -> OutboxEntry:
    return OutboxEntry.objects.get(kind=follow_ups.EMAIL, payload__message=message.pk)


def test_a_permanent_refusal_bounces_suppresses_and_exits_every_flow(smtp, ann_in_two_flows, capture, tick, start):
    smtp.refuse_rcpt = "550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown"

    tick(start)

    assert smtp.envelopes == []
    message = NurtureMessage.objects.get()
    assert message.status == NurtureMessage.Status.BOUNCED
    assert "550" in message.error and message.attempts == 1
    assert _email_entry(message).status == OutboxEntry.Status.DONE  # nothing left to retry
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("ann@example.com", Suppression.Reason.BOUNCED)
    assert set(ann_in_two_flows.enrollments.values_list("status", "exit_reason")) == {("exited", "bounced")}

    smtp.refuse_rcpt = None
    tick(start + timedelta(days=3))
    comeback = capture(campaign_=CampaignFactory(), email="ann@example.com", first_name="Ann")
    assert not comeback.enrollments.exists()
    assert smtp.envelopes == []


def test_a_temporary_refusal_stays_queued_and_is_retried(smtp, ann_in_two_flows, tick, start):
    smtp.refuse_rcpt = "451 4.3.0 Mailbox temporarily unavailable, try again later"

    tick(start)

    message = NurtureMessage.objects.get()
    assert (message.status, message.attempts, message.sent_at) == (NurtureMessage.Status.QUEUED, 1, None)
    assert "451" in message.error
    entry = _email_entry(message)
    assert entry.status == OutboxEntry.Status.PENDING and entry.next_attempt_at > timezone.now()
    assert "RetryLater" in entry.last_error
    assert not Suppression.objects.exists()
    assert ann_in_two_flows.enrollments.filter(status="active").count() == 2

    smtp.refuse_rcpt = None  # the server takes mail again; the retry comes due
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())
    assert outbox_process(entry_id=entry.pk) == "done"

    message.refresh_from_db()
    assert (message.status, message.attempts, message.error) == (NurtureMessage.Status.SENT, 2, "")
    assert len(smtp.envelopes) == 1 and smtp.messages[0]["Message-ID"] == message.provider_id


def test_a_mail_server_that_is_down_is_retried_not_bounced(settings, make_flow, tick, start):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _free_port(), 2
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    lead_enroll(flow=make_flow(email_step(1)), lead=LeadFactory(consent=True))

    tick(start)

    message = NurtureMessage.objects.get()
    assert message.status == NurtureMessage.Status.QUEUED and message.attempts == 1
    assert _email_entry(message).status == OutboxEntry.Status.PENDING
    assert not Suppression.objects.exists()


def test_a_message_that_keeps_failing_is_given_up_as_failed(smtp, make_flow, tick, start):
    smtp.refuse_rcpt = "451 4.3.0 try again later"
    lead_enroll(flow=make_flow(email_step(1)), lead=LeadFactory(consent=True))
    tick(start)
    message = NurtureMessage.objects.get()
    entry = _email_entry(message)
    NurtureMessage.objects.filter(pk=message.pk).update(attempts=MAX_SEND_ATTEMPTS - 1)
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())

    assert outbox_process(entry_id=entry.pk) == "failed"

    message.refresh_from_db()
    assert (message.status, message.attempts) == (NurtureMessage.Status.FAILED, MAX_SEND_ATTEMPTS)
    assert not Suppression.objects.exists()  # our server's trouble is not the address's fault


@pytest.mark.parametrize("failure", ["sender refused", "login refused"])
def test_a_refusal_of_our_sender_or_login_does_not_bounce_the_recipient(
    failure, settings, smtp, ann_in_two_flows, tick, start
):
    if failure == "sender refused":
        smtp.refuse_mail = "550 5.7.1 Sender address rejected: not permitted to relay"
    else:
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "leadcrm", "an-expired-password"
        smtp.reject_login = True  # 535 Authentication credentials invalid

    tick(start)

    assert not Suppression.objects.exists()
    assert NurtureMessage.objects.get().status != NurtureMessage.Status.BOUNCED
    assert ann_in_two_flows.enrollments.filter(status=Enrollment.Status.ACTIVE).count() == 2


def test_a_ticks_emails_go_over_one_smtp_connection_and_are_recorded_together(smtp, make_flow, tick, start):
    flow = make_flow(email_step(1))
    leads = [LeadFactory(consent=True, first_name=f"Reader{n}") for n in range(6)]
    for lead in leads:
        lead_enroll(flow=flow, lead=lead)

    tick(start)  # the tick's six emails go to the worker as one batch

    assert len(smtp.envelopes) == 6
    assert smtp.connections == 1
    assert sorted(m["Subject"] for m in smtp.messages) == sorted(f"Email 1 for Reader{n}" for n in range(6))
    sent = NurtureMessage.objects.filter(status=NurtureMessage.Status.SENT)
    assert sent.count() == 6 and not sent.filter(sent_at=None).exists()
    assert all(
        lead.events.filter(kind="nurture", data__sent="Email 1 for {{ lead.first_name }}").exists() for lead in leads
    )


def test_two_readers_of_one_step_each_get_their_own_address_name_and_links(smtp, make_flow, tick, start):
    # Emails of one step share a MIME skeleton: each must still carry only its own reader's parts.
    flow = make_flow(email_step(1))
    readers = {"ann@example.com": "Ann", "bob@example.com": "Bob"}
    for email, first_name in readers.items():
        lead_enroll(flow=flow, lead=LeadFactory(consent=True, email=email, first_name=first_name))

    tick(start)

    assert len(smtp.envelopes) == 2
    for envelope, received in zip(smtp.envelopes, smtp.messages, strict=True):
        message = NurtureMessage.objects.get(to_email=received["To"])
        name = readers[message.to_email]
        assert envelope.rcpt_tos == [message.to_email] and received["Message-ID"] == message.provider_id
        assert received["Subject"] == f"Email 1 for {name}"
        text, body = parts(received)
        assert f"Hello {name}," in text and f"Hello {name}," in body
        assert not any(other in text + body for other in readers.values() if other != name)
        unsubscribe = unsubscribe_link(received)
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"Unsubscribe: {unsubscribe}" in text and html.escape(unsubscribe) in body
        assert read_token("unsubscribe", _token(unsubscribe)) == message.pk
        assert read_token("open", _token(open_pixel(body))) == message.pk
        [link] = tracked_links(body)
        assert read_token("click", _token(link)) == [message.pk, "https://example.com/solar/1"]


def _token(url: str) -> str:
    return link_path(url).rstrip("/").rsplit("/", 1)[1]


def test_a_batch_reads_the_lead_fields_its_templates_name_in_queries_that_do_not_grow_with_it(
    smtp, make_flow, tick, start
):
    # A batch reads only some lead fields; the ones a step names must come with them, not one query a lead.
    step = email_step(1, subject="For {{ lead.first_name }} {{ lead.last_name }} at {{ lead.company }}")
    queries = []
    for size in (1, 6):
        flow = make_flow(step)
        for n in range(size):
            lead_enroll(
                flow=flow, lead=LeadFactory(consent=True, first_name="Ann", last_name=f"Lee{n}", company=f"Firm {n}")
            )
        with CaptureQueriesContext(connection) as captured:
            tick(start)
        queries.append(len(captured))

    assert queries[0] == queries[1]
    assert sorted(m["Subject"] for m in smtp.messages[1:]) == [f"For Ann Lee{n} at Firm {n}" for n in range(6)]


@pytest.mark.parametrize(
    "source",
    [
        "Hello {{ lead.first_name }}, {{ offer.name }} & more",
        "{{ lead.first_name|upper }} {{ lead.missing }} {{ nobody.at_all }}{{ lead.score }}",
        "{% if lead.first_name %}Hi {{ lead.first_name }}{% endif %}",  # a tag: Django renders it whole
        "plain text only",
    ],
)
@pytest.mark.parametrize("autoescape", [True, False])
def test_a_steps_template_renders_as_django_renders_it(source, autoescape):
    lead = LeadFactory.build(first_name="<Jo & Ann>", score=7)
    values = {"lead": lead, "offer": {"name": "Solar & Storage"}, "unsubscribe_url": "https://x/?a=1&b=2"}

    ours = _template(source).render(Context(values, autoescape=autoescape))

    assert ours == Template(source).render(Context(values, autoescape=autoescape))
    assert ("&amp;" in ours) == (autoescape and "lead.first_name" in source)


def test_a_batch_read_a_chunk_at_a_time_sends_each_email_once_and_none_to_an_address_suppressed_since(
    smtp, make_flow, start, monkeypatch
):
    # A batch reads its messages as sending reaches them: here 2, then 3 at a time.
    monkeypatch.setattr(sending, "FIRST_READ_CHUNK", 2)
    monkeypatch.setattr(sending, "READ_CHUNK", 3)
    flow = make_flow(email_step(1))
    for n in range(7):
        lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name=f"Reader{n}", email=f"reader{n}@example.com"))
    assert nurture_tick(now=start) == 7  # queued; the outbox sends them below
    suppress(email="reader5@example.com", reason=Suppression.Reason.UNSUBSCRIBED)  # after the tick queued it

    entries = OutboxEntry.objects.filter(kind=follow_ups.EMAIL).order_by("pk")
    outcomes = outbox_drain(entry_ids=[entry.pk for entry in entries])

    assert sorted(outcomes.values()) == ["done"] * 7
    assert smtp.connections == 1
    assert sorted(envelope.rcpt_tos[0] for envelope in smtp.envelopes) == [
        f"reader{n}@example.com" for n in range(7) if n != 5
    ]
    assert sorted(m["Subject"] for m in smtp.messages) == [f"Email 1 for Reader{n}" for n in range(7) if n != 5]
    statuses = dict(NurtureMessage.objects.values_list("to_email", "status"))
    assert statuses.pop("reader5@example.com") == NurtureMessage.Status.SUPPRESSED
    assert set(statuses.values()) == {NurtureMessage.Status.SENT}

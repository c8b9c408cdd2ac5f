"""Sending a nurture email: render for the lead, check suppression at send time, send, record.

Runs as an outbox batch handler, outside any transaction: a batch goes over one SMTP connection and
its sends are recorded in bulk. A temporary SMTP failure is retried; a permanent one marks the
address bounced, suppresses it and takes it out of every flow.
"""

import functools
import itertools
import json
import re
import smtplib
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from email.utils import make_msgid
from html import unescape

from django.conf import settings
from django.db import connection, transaction
from django.template import Context, Template
from django.template.base import TextNode, VariableNode
from django.utils import timezone
from django.utils.html import escape

from campaigns.models import Campaign, Offer
from leadcrm.bulk import bulk_update_rows
from leadcrm.email_skeleton import SkeletonEmail
from leads.models import Lead, LeadEvent, OutboxEntry
from leads.services.calls import Mailer, smtp_error_is_permanent
from leads.services.outbox import RECORD_EVERY_ROWS, RECORD_EVERY_SECONDS, BatchResult, GiveUp, NotStarted, RetryLater

from ..models import Enrollment, Flow, FlowStep, NurtureMessage, Suppression
from .engine import status_exit
from .enrollment import ERASED_BEFORE_SENDING, suppress
from .tracking import LinkPlace, MessageLinks, link_place

MAX_SEND_ATTEMPTS = 8
# Emails built and waiting for the mail server, besides the one it is sending: enough for its
# thread to keep sending (about 20 ms) while this one writes what was sent or reads the next chunk.
SEND_AHEAD = 32
FIRST_READ_CHUNK = 25
READ_CHUNK = 100
_LINK = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


class _Compiled:
    """A step's template. One of text and variables only (most are: "Hello {{ lead.first_name }}")
    is rendered by its own nodes, each as Django renders it, without Template.render's
    per-call state for tags, which such a template has none of (a third of its cost)."""

    def __init__(self, template: Template):
        self.template = template
        nodes = list(template.nodelist)
        self.nodes = nodes if all(type(node) in (TextNode, VariableNode) for node in nodes) else None

    def render(self, context: Context) -> str:
        if self.nodes is None or context.template is not None:
            return self.template.render(context)
        context.template, context.template_name = self.template, self.template.name  # as Template.render binds it
        try:
            return "".join([node.s if type(node) is TextNode else node.render(context) for node in self.nodes])
        finally:
            context.template = None


@functools.lru_cache(maxsize=256)
def _template(source: str) -> _Compiled:
    """Compiled once per text: a flow's thousands of sends share the same few templates."""
    return _Compiled(Template(source))


def _context(message: NurtureMessage, unsubscribe: str) -> Context:
    lead = message.lead
    return Context(
        {"lead": lead, "campaign": lead.campaign, "offer": lead.offer, "unsubscribe_url": unsubscribe},
        autoescape=True,
    )


def render_message(message: NurtureMessage) -> tuple[str, str, str]:
    """(subject, text, html) for the message's lead, with tracked links and the open pixel."""
    links = MessageLinks(message.pk)
    return _render(message, links, links.unsubscribe())


def _render(message: NurtureMessage, links: MessageLinks, unsubscribe: str) -> tuple[str, str, str]:
    step = message.step
    plain = _context(message, unsubscribe)
    plain.autoescape = False  # subject and text are not HTML: "Solar & Storage" stays as typed
    subject = " ".join(_template(step.subject).render(plain).split())
    text = _template(step.body_text).render(plain) if step.body_text else ""
    text += f"\n\nUnsubscribe: {unsubscribe}\n"
    html = ""
    if step.body_html:
        html = _template(step.body_html).render(_context(message, unsubscribe))
        # An href in HTML has &amp; for &: the link signs the URL the reader meant.
        html = _LINK.sub(lambda match: f'href="{escape(links.click(unescape(match.group(1))))}"', html)
        html += (
            f'<p style="font-size:12px"><a href="{escape(unsubscribe)}">Unsubscribe</a></p>'
            f'<img src="{escape(links.open())}" width="1" height="1" alt="">'
        )
    return subject, text, html


def build_email(message: NurtureMessage, place: LinkPlace | None = None) -> SkeletonEmail:
    """The email for the message's lead. A SkeletonEmail: a batch's emails of one step share one
    MIME skeleton, and only their own parts (To, subject, bodies, links, ids) are put in. `place`:
    where its links are reversed, read once for a batch (`link_place`)."""
    links = MessageLinks(message.pk, place)
    unsubscribe = links.unsubscribe()
    subject, text, html = _render(message, links, unsubscribe)
    email = SkeletonEmail(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        [message.to_email],
        headers={
            "Message-ID": message.provider_id,
            # RFC 8058 one-click unsubscribe: mail clients POST to the URL.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    if html:
        email.attach_alternative(html, "text/html")
    return email


def _stopped(message: NurtureMessage, suppressed: set[str]) -> str:
    """Why the message is not sent ("" to send it), checked now, not when the step ran: an
    unsubscribe, a withdrawn consent or an exit in between stops the send."""
    if message.enrollment.status == Enrollment.Status.EXITED:
        return "left the flow before sending"
    if message.lead.erased_at:
        return ERASED_BEFORE_SENDING
    if not message.lead.consent:
        return "marketing consent withdrawn before sending"
    if status_exit(message.enrollment.flow, message.lead.status):  # e.g. won after the last email was queued
        return "left the flow before sending"
    if message.to_email.lower() in suppressed:
        return "suppressed before sending"
    return ""


def _without_address(reason: str, address: str) -> str:
    """The server's words without the recipient's address, which a refusal quotes (smtplib keys its
    refusals by it): the message's error is kept, and shown, where the address is not."""
    if not address:
        return reason
    return re.sub(re.escape(address), "the recipient", reason, flags=re.IGNORECASE)


def _settle(message: NurtureMessage, error: BaseException | None) -> bool:
    """The send's outcome. True: sent (recorded with the batch). False: bounced for good (recorded
    here). Raises RetryLater or GiveUp when the server failed for now."""
    attempts = message.attempts + 1
    if error is None:
        message.attempts = attempts
        return True
    if not isinstance(error, smtplib.SMTPException | OSError):
        raise error
    reason = _without_address(f"{type(error).__name__}: {error}", message.to_email)[:500]
    if smtp_error_is_permanent(error):
        with transaction.atomic():
            NurtureMessage.objects.filter(pk=message.pk).update(
                status=NurtureMessage.Status.BOUNCED, attempts=attempts, error=reason
            )
            suppress(email=message.to_email, reason=Suppression.Reason.BOUNCED)
        return False
    final = attempts >= MAX_SEND_ATTEMPTS
    NurtureMessage.objects.filter(pk=message.pk).update(
        status=NurtureMessage.Status.FAILED if final else NurtureMessage.Status.QUEUED,
        attempts=attempts,
        error=reason,
    )
    if final:
        raise GiveUp("the mail server kept failing") from error
    raise RetryLater("the mail server did not take the message") from error


def _record_sent(messages: list[NurtureMessage]) -> None:
    now = timezone.now()
    for message in messages:
        message.status, message.sent_at, message.error = NurtureMessage.Status.SENT, now, ""
    if connection.vendor == "postgresql":
        _record_sent_in_one_statement(messages, now)
        return
    with transaction.atomic():
        bulk_update_rows(messages, ["status", "attempts", "sent_at", "error"])
        LeadEvent.objects.bulk_create(
            LeadEvent(
                lead_id=message.lead_id,
                kind=LeadEvent.Kind.NURTURE,
                data={"sent": message.step.subject[:100], "message": str(message.public_id)},
                created_at=now,
            )
            for message in messages
        )


def _record_sent_in_one_statement(messages: list[NurtureMessage], now: datetime) -> None:
    """The sends and their timeline events in one statement (its own transaction): a batch records
    every RECORD_EVERY_ROWS sends, and BEGIN and COMMIT would double its round trips."""
    quote = connection.ops.quote_name
    message_table, event_table = quote(NurtureMessage._meta.db_table), quote(LeadEvent._meta.db_table)
    step_table = quote(FlowStep._meta.db_table)
    sql = (
        f"WITH sent AS (UPDATE {message_table} AS m SET status = %s, attempts = v.attempts, sent_at = %s, error = '' "  # noqa: S608
        "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, attempts integer) WHERE m.id = v.id "
        "RETURNING m.lead_id, m.step_id, m.public_id) "
        f"INSERT INTO {event_table} (lead_id, kind, created_at, actor_id, data) "
        "SELECT sent.lead_id, %s, %s, NULL, jsonb_build_object('sent', left(step.subject, 100), 'message', "
        f"sent.public_id::text) FROM sent JOIN {step_table} AS step ON step.id = sent.step_id"
    )
    sends = json.dumps([{"id": message.pk, "attempts": message.attempts} for message in messages])
    with connection.cursor() as cursor:
        cursor.execute(sql, [NurtureMessage.Status.SENT.value, now, sends, LeadEvent.Kind.NURTURE.value, now])


# What a batch reads of its messages, their enrollments and leads: what sending, the checks at send
# time and the record need. A lead's other fields are read only when a step's template names them
# (`lead.<field>` in its text); one named some other way is still read, on first use.
_MESSAGE_FIELDS = ("public_id", "enrollment", "lead", "step", "to_email", "status", "provider_id", "attempts")
_ENROLLMENT_FIELDS = ("enrollment__status", "enrollment__flow")
_LEAD_FIELDS = ("status", "erased_at", "consent", "campaign", "offer")
_LEAD_NAMED = re.compile(r"\blead\.(\w+)")


def _named_lead_fields(steps: Iterable[FlowStep]) -> set[str]:
    names = {field.name for field in Lead._meta.concrete_fields}
    named = {
        match.group(1)
        for step in steps
        for source in (step.subject, step.body_text, step.body_html)
        for match in _LEAD_NAMED.finditer(source)
    }
    return named & names


class _Reader:
    """A batch's messages with their enrollments and leads (the fields their templates name), read a
    chunk at a time as sending reaches them: the mail server starts on the first emails while the
    rest are read. Steps, flows, campaigns and offers are read once each and shared across chunks: a
    batch's emails mostly come from one step."""

    def __init__(self) -> None:
        self.steps: dict[int, FlowStep] = {}
        self.flows: dict[int, Flow] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.offers: dict[int, Offer] = {}

    def read(self, message_ids: list[int]) -> tuple[dict[int, NurtureMessage], set[str]]:
        """The messages by id, and which of their addresses are suppressed now."""
        messages = (
            NurtureMessage.objects.select_related("enrollment")
            .only(*_MESSAGE_FIELDS, *_ENROLLMENT_FIELDS)
            .in_bulk(message_ids)
        )
        found = messages.values()
        self.steps.update(FlowStep.objects.in_bulk({m.step_id for m in found} - self.steps.keys()))
        steps = [self.steps[m.step_id] for m in found]
        leads = Lead.objects.only(*_LEAD_FIELDS, *_named_lead_fields(steps)).in_bulk({m.lead_id for m in found})
        self.flows.update(Flow.objects.in_bulk({m.enrollment.flow_id for m in found} - self.flows.keys()))
        self.campaigns.update(
            Campaign.objects.in_bulk(
                {lead.campaign_id for lead in leads.values() if lead.campaign_id} - self.campaigns.keys()
            )
        )
        self.offers.update(
            Offer.objects.in_bulk({lead.offer_id for lead in leads.values() if lead.offer_id} - self.offers.keys())
        )
        for message in found:
            message.step = self.steps[message.step_id]
            message.enrollment.flow = self.flows[message.enrollment.flow_id]
            message.lead = lead = leads[message.lead_id]
            if lead.campaign_id:
                lead.campaign = self.campaigns[lead.campaign_id]
            if lead.offer_id:
                lead.offer = self.offers[lead.offer_id]
        suppressed = set(
            Suppression.objects.filter(email__in={m.to_email.lower() for m in found}).values_list("email", flat=True)
        )
        without_id = [m for m in found if m.status == NurtureMessage.Status.QUEUED and not m.provider_id]
        for message in without_id:
            message.provider_id = make_msgid(domain=settings.NURTURE_MESSAGE_ID_DOMAIN)
        bulk_update_rows(without_id, ["provider_id"])  # before sending: a resend keeps it
        return messages, suppressed


def _chunks(entries: list[OutboxEntry]) -> Iterator[list[OutboxEntry]]:
    """A small first chunk, so the first email goes out soon; then READ_CHUNK at a time."""
    start = 0
    for size in itertools.chain([FIRST_READ_CHUNK], itertools.repeat(READ_CHUNK)):
        if start >= len(entries):
            return
        yield entries[start : start + size]
        start += size


def nurture_email_batch(entries: list[OutboxEntry], deadline: float) -> Iterator[BatchResult | None]:
    """Send a batch of queued emails over one SMTP connection; sends are recorded in bulk.

    A thread of the batch's own talks to the mail server while this one builds the next emails and
    records the last ones: each send waits on the server for most of its time."""
    reader = _Reader()
    place = link_place()
    mailer = Mailer()
    sent: list[tuple[OutboxEntry, NurtureMessage]] = []
    sending: deque[tuple[OutboxEntry, NurtureMessage, Future[None]]] = deque()
    flushed_at = time.monotonic()

    def settle_next() -> Iterator[BatchResult | None]:
        entry, message, future = sending.popleft()
        try:
            if _settle(message, future.exception()):
                sent.append((entry, message))
            else:
                yield entry, None
        except Exception as error:
            yield entry, error

    def record(*, due: bool = True) -> Iterator[BatchResult | None]:
        nonlocal sent, flushed_at
        if not due and len(sent) < RECORD_EVERY_ROWS and time.monotonic() - flushed_at < RECORD_EVERY_SECONDS:
            return
        if sent:
            _record_sent([message for _, message in sent])
            for entry, _ in sent:
                yield entry, None
        sent, flushed_at = [], time.monotonic()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nurture-smtp") as sender:
        try:
            for chunk in _chunks(entries):
                if time.monotonic() > deadline:
                    for entry in chunk:
                        yield entry, NotStarted()
                    continue
                messages, suppressed = reader.read([entry.payload["message"] for entry in chunk])
                for entry in chunk:
                    found = messages.get(entry.payload["message"])
                    if found is None or found.status != NurtureMessage.Status.QUEUED:
                        yield entry, None
                        continue
                    message = found
                    if time.monotonic() > deadline:
                        yield entry, NotStarted()
                        continue
                    stopped = _stopped(message, suppressed)
                    if stopped:
                        NurtureMessage.objects.filter(pk=message.pk).update(
                            status=NurtureMessage.Status.SUPPRESSED, error=stopped
                        )
                        yield entry, None
                        continue
                    try:
                        email = build_email(message, place)
                        wire = email.wire()  # made here: the mail server's thread only sends
                    except Exception as error:
                        yield entry, error
                        continue
                    sending.append((entry, message, sender.submit(mailer.send, email, wire)))
                    # Build only so far ahead of the mail server that the deadline still stops the
                    # batch and one stopped early has few emails in flight that it cannot record.
                    while sending and (len(sending) > SEND_AHEAD or sending[0][2].done()):
                        yield from settle_next()
                    yield from record(due=False)
            while sending:
                yield from settle_next()
                yield from record(due=False)
            yield from record()
        finally:
            # Stopped early: emails not yet handed to the server are not sent; the sends under way
            # end before the connection closes, unrecorded, so their entries run again (at least once).
            wait([future for _, _, future in sending if not future.cancel()])
            mailer.close()


def nurture_email_handler(entry: OutboxEntry) -> None:
    for result in nurture_email_batch([entry], deadline=float("inf")):
        if result is not None and result[1] is not None:
            raise result[1]

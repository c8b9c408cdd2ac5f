"""Sending a nurture email: render for the lead, check suppression at send time, send, record.

Runs as an outbox handler, outside any transaction. A temporary SMTP failure is retried; a
permanent one marks the address bounced, suppresses it and takes it out of every flow.
"""

import functools
import re
import smtplib
from email.utils import make_msgid
from html import unescape

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template import Context, Template
from django.utils import timezone
from django.utils.html import escape

from leads.models import LeadEvent, OutboxEntry
from leads.services.outbox import GiveUp, RetryLater

from ..models import Enrollment, NurtureMessage, Suppression
from .engine import status_exit
from .enrollment import suppress
from .tracking import click_url, open_url, unsubscribe_url

MAX_SEND_ATTEMPTS = 8
_LINK = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _template(source: str) -> Template:
    """Compiled once per text: a flow's thousands of sends share the same few templates."""
    return Template(source)


def _context(message: NurtureMessage, unsubscribe: str) -> Context:
    lead = message.lead
    return Context(
        {"lead": lead, "campaign": lead.campaign, "offer": lead.offer, "unsubscribe_url": unsubscribe},
        autoescape=True,
    )


def render_message(message: NurtureMessage) -> tuple[str, str, str]:
    """(subject, text, html) for the message's lead, with tracked links and the open pixel."""
    step = message.step
    unsubscribe = unsubscribe_url(message.pk)
    plain = _context(message, unsubscribe)
    plain.autoescape = False  # subject and text are not HTML: "Solar & Storage" stays as typed
    subject = " ".join(_template(step.subject).render(plain).split())
    text = _template(step.body_text).render(plain) if step.body_text else ""
    text += f"\n\nUnsubscribe: {unsubscribe}\n"
    html = ""
    if step.body_html:
        html = _template(step.body_html).render(_context(message, unsubscribe))
        # An href in HTML has &amp; for &: the link signs the URL the reader meant.
        html = _LINK.sub(lambda match: f'href="{escape(click_url(message.pk, unescape(match.group(1))))}"', html)
        html += (
            f'<p style="font-size:12px"><a href="{escape(unsubscribe)}">Unsubscribe</a></p>'
            f'<img src="{escape(open_url(message.pk))}" width="1" height="1" alt="">'
        )
    return subject, text, html


def build_email(message: NurtureMessage) -> EmailMultiAlternatives:
    subject, text, html = render_message(message)
    unsubscribe = unsubscribe_url(message.pk)
    email = EmailMultiAlternatives(
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


def _permanent(error: Exception) -> bool:
    """The recipient's address is bad for good. A refused sender or login is our configuration,
    never the recipient's bounce: suppressing on it would empty the whole list."""
    if isinstance(error, smtplib.SMTPSenderRefused | smtplib.SMTPAuthenticationError):
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def nurture_email_handler(entry: OutboxEntry) -> None:
    message = NurtureMessage.objects.select_related("lead__campaign", "lead__offer", "step", "enrollment__flow").get(
        pk=entry.payload["message"]
    )
    if message.status != NurtureMessage.Status.QUEUED:
        return
    # Checked now, not when the step ran: an unsubscribe or exit in between stops the send.
    stopped = (
        message.enrollment.status == Enrollment.Status.EXITED
        or message.lead.erased_at
        or bool(
            status_exit(message.enrollment.flow, message.lead.status)  # e.g. won after the last email was queued
        )
    )
    if stopped or Suppression.objects.filter(email=message.to_email.lower()).exists():
        NurtureMessage.objects.filter(pk=message.pk).update(
            status=NurtureMessage.Status.SUPPRESSED, error="suppressed or left the flow before sending"
        )
        return
    if not message.provider_id:
        message.provider_id = make_msgid(domain=settings.NURTURE_MESSAGE_ID_DOMAIN)
        NurtureMessage.objects.filter(pk=message.pk).update(provider_id=message.provider_id)
    attempts = message.attempts + 1
    try:
        build_email(message).send()
    except (smtplib.SMTPException, OSError) as error:
        reason = f"{type(error).__name__}: {error}"[:500]
        if _permanent(error):
            with transaction.atomic():
                NurtureMessage.objects.filter(pk=message.pk).update(
                    status=NurtureMessage.Status.BOUNCED, attempts=attempts, error=reason
                )
                suppress(email=message.to_email, reason=Suppression.Reason.BOUNCED)
            return
        final = attempts >= MAX_SEND_ATTEMPTS
        NurtureMessage.objects.filter(pk=message.pk).update(
            status=NurtureMessage.Status.FAILED if final else NurtureMessage.Status.QUEUED,
            attempts=attempts,
            error=reason,
        )
        if final:
            raise GiveUp("the mail server kept failing") from error
        raise RetryLater("the mail server did not take the message") from error
    with transaction.atomic():
        NurtureMessage.objects.filter(pk=message.pk).update(
            status=NurtureMessage.Status.SENT, attempts=attempts, sent_at=timezone.now(), error=""
        )
        LeadEvent.objects.create(
            lead_id=message.lead_id,
            kind=LeadEvent.Kind.NURTURE,
            data={"sent": message.step.subject[:100], "message": str(message.public_id)},
        )

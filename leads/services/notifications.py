"""Events about a supplier's leads (a return) POSTed to the supplier's webhook, signed like deliveries.

The body follows the Standard Webhooks payload shape: {"type", "timestamp", "data"}. Each event is
a PartnerNotification row written with the change, sent through the outbox and retried on the
delivery schedule; its webhook id never changes, so the supplier can drop repeats.
"""

import json
import time

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from ..models import DeliveryAttempt, Lead, OutboxEntry, PartnerNotification
from .answers import Outcome, Verdict, excerpt, judge_answer, retry_delay
from .outbound_http import TransportError, UnsafeDestination, http_request
from .outbox import GiveUp, RetryLater, outbox_enqueue
from .signing import signature_headers

NOTIFICATION_TIMEOUT_SECONDS = 10


class NotSigned(Exception):
    """The partner has no active signing secret; nothing is sent unsigned."""


def partner_notify(*, lead: Lead, event: str, data: dict) -> PartnerNotification | None:
    """Record the event for the lead's supplier in the caller's transaction, if it has a webhook."""
    partner = lead.partner
    if partner is None or not partner.webhook_url or not partner.is_active or lead.is_test:
        return None
    notification = PartnerNotification.objects.create(partner=partner, lead=lead, event=event, data=data)
    outbox_enqueue(lead=lead, kinds=[OutboxEntry.Kind.PARTNER_NOTIFICATION], payload={"notification": notification.pk})
    return notification


def notification_body(notification: PartnerNotification) -> bytes:
    payload = {"type": notification.event, "timestamp": notification.created_at.isoformat(), "data": notification.data}
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def notification_send(*, notification: PartnerNotification) -> tuple[str, float | None, str]:
    partner = notification.partner
    body = notification_body(notification)
    secrets = [secret for secret in partner.webhook_secrets.all() if secret.revoked_at is None]
    headers = {
        "Content-Type": "application/json",
        **signature_headers(
            secrets=secrets,
            msg_id=notification.webhook_id,
            body=body,
            timestamp=int(time.time()),
        ),
    }
    status_code, latency, response, error = None, 0, "", ""
    try:
        if not secrets:  # events are always signed
            raise NotSigned("no webhook signing secret: create one for the partner (admin action)")
        answer = http_request(
            "POST", partner.webhook_url, body=body, headers=headers, timeout=NOTIFICATION_TIMEOUT_SECONDS
        )
    except (UnsafeDestination, NotSigned) as failure:
        verdict, error = Verdict(Outcome.FAILED, reason=str(failure)[:500]), str(failure)
    except TransportError as failure:
        verdict, error = Verdict(Outcome.RETRY, reason=str(failure)[:500]), str(failure)
    else:
        verdict = judge_answer(answer)
        if verdict.outcome == Outcome.REJECTED:  # nobody else to tell: a 4xx is final
            verdict.outcome = Outcome.FAILED
        status_code, latency, response = answer.status, answer.latency_ms, excerpt(answer)
    attempts = notification.attempts + 1
    outcome, delay = verdict.outcome, None
    if outcome == Outcome.RETRY:
        delay = retry_delay(attempts=attempts, retry_after=verdict.retry_after)
        if delay is None:
            outcome, verdict.reason = Outcome.FAILED, f"gave up after {attempts} attempts; last: {verdict.reason}"
    status = {Outcome.ACCEPTED: PartnerNotification.Status.SENT, Outcome.FAILED: PartnerNotification.Status.FAILED}
    status = status.get(outcome, PartnerNotification.Status.PENDING)
    with transaction.atomic():
        PartnerNotification.objects.filter(pk=notification.pk).update(
            status=status,
            attempts=attempts,
            last_status_code=status_code,
            reason=verdict.reason[:500],
            finished_at=None if status == PartnerNotification.Status.PENDING else timezone.now(),
        )
        DeliveryAttempt.objects.create(
            notification=notification,
            url=partner.webhook_url[:2000],
            status_code=status_code,
            latency_ms=latency,
            outcome=outcome,
            error=error[:500],
            response_excerpt=response,
        )
    return outcome, delay, verdict.reason


def notification_outbox_handler(entry: OutboxEntry) -> None:
    notification = PartnerNotification.objects.select_related("partner").get(pk=entry.payload["notification"])
    if notification.status == PartnerNotification.Status.SENT:
        return
    if notification.status == PartnerNotification.Status.FAILED and not entry.payload.get("resend"):
        raise GiveUp(notification.reason or "notification failed")
    outcome, delay, reason = notification_send(notification=notification)
    if outcome == Outcome.RETRY:
        raise RetryLater(reason or "the supplier did not answer", delay=delay)
    if outcome == Outcome.FAILED:
        raise GiveUp(reason or "notification failed")


@transaction.atomic
def notifications_resend(*, notifications) -> int:
    count = 0
    for notification in notifications.exclude(
        status__in=(PartnerNotification.Status.SENT, PartnerNotification.Status.PENDING)
    ):
        PartnerNotification.objects.filter(pk=notification.pk).update(
            status=PartnerNotification.Status.PENDING, attempts=0, finished_at=None
        )
        outbox_enqueue(
            lead=notification.lead,
            kinds=[OutboxEntry.Kind.PARTNER_NOTIFICATION],
            payload={"notification": notification.pk, "resend": True},
        )
        count += 1
    return count

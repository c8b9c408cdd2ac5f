"""Events about a supplier's leads (a return) POSTed to the supplier's webhook, signed like deliveries.

The body follows the Standard Webhooks payload shape: {"type", "timestamp", "data"}. Each event is
a PartnerNotification row written with the change, sent through the outbox and retried on the
delivery schedule; its webhook id never changes, so the supplier can drop repeats.
"""

import json
import time
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet

from ..models import Lead, OutboxEntry, PartnerNotification
from .calls import CallResult, PartnerRequest, end_entry, partner_calls_batch, perform, record_call, run_partner_call
from .outbox import GiveUp, outbox_enqueue
from .signing import signature_headers

NOTIFICATION_TIMEOUT_SECONDS = 10


def partner_notify(*, lead: Lead, event: str, data: dict[str, Any]) -> PartnerNotification | None:
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


def notification_request(notification: PartnerNotification) -> PartnerRequest:
    partner = notification.partner
    secrets = [secret for secret in partner.webhook_secrets.all() if secret.revoked_at is None]
    if not secrets:  # events are always signed
        return PartnerRequest(
            url=partner.webhook_url, refusal="no webhook signing secret: create one for the partner (admin action)"
        )
    body = notification_body(notification)
    headers = {
        "Content-Type": "application/json",
        **signature_headers(secrets=secrets, msg_id=notification.webhook_id, body=body, timestamp=int(time.time())),
    }
    return PartnerRequest(url=partner.webhook_url, body=body, headers=headers, timeout=NOTIFICATION_TIMEOUT_SECONDS)


def notification_send(*, notification: PartnerNotification) -> tuple[str, float | None, str]:
    request = notification_request(notification)
    outcome, delay = record_call(notification, url=request.url, result=perform(request), attempt_of="notification")
    return outcome, delay, notification.reason


class NotificationCall:
    """The "partner notification" follow-up as a partner call: a signed POST to the supplier."""

    def prepare(self, entry: OutboxEntry) -> tuple[PartnerNotification, PartnerRequest] | None:
        notification = PartnerNotification.objects.select_related("partner").get(pk=entry.payload["notification"])
        if notification.status == PartnerNotification.Status.SENT:
            return None
        if notification.status == PartnerNotification.Status.FAILED and not entry.payload.get("resend"):
            raise GiveUp(notification.reason or "notification failed")
        return notification, notification_request(notification)

    def record(
        self, entry: OutboxEntry, notification: PartnerNotification, request: PartnerRequest, result: CallResult
    ) -> None:
        outcome, delay = record_call(notification, url=request.url, result=result, attempt_of="notification")
        end_entry(outcome, delay, notification.reason or "the supplier did not answer")


notification_call = NotificationCall()
notification_outbox_batch = partner_calls_batch(notification_call)


def notification_outbox_handler(entry: OutboxEntry) -> None:
    run_partner_call(notification_call, entry)


@transaction.atomic
def notifications_resend(*, notifications: QuerySet[PartnerNotification]) -> int:
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

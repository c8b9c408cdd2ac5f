"""Webhook signing in the Standard Webhooks style (standardwebhooks.com), with two-secret rotation."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from leadcrm.config_cache import config_changed
from leadcrm.encryption import decrypt, encrypt

from ..models import DeliveryDestination, Partner, WebhookSecret

SECRET_PREFIX = "whsec_"  # noqa: S105  the Standard Webhooks prefix, not a secret


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the secret's base64 bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(*, secrets: Iterable[WebhookSecret], msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers; one signature per active secret, so either of two verifies during a rotation."""
    active = [decrypt(secret.secret_encrypted) for secret in secrets if secret.revoked_at is None]
    return signed_headers(keys=active, msg_id=msg_id, body=body, timestamp=timestamp)


def signed_headers(*, keys: list[str], msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers from secrets already decrypted (a batch decrypts a destination's once)."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if keys:
        headers["webhook-signature"] = " ".join(
            signature(secret=key, msg_id=msg_id, timestamp=timestamp, body=body) for key in keys
        )
    return headers


@transaction.atomic
def _rotate(owner: dict[str, Any]) -> str:
    """Create a new signing secret and return it (the only time it is readable in full).

    The newest earlier secret stays active beside it, so the partner can switch over; older ones
    are revoked. Rotating twice retires the previous secret for good.
    """
    raw = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    active = list(
        WebhookSecret.objects.select_for_update()
        .filter(**owner, revoked_at__isnull=True)
        .order_by("-created_at", "-id")
    )
    WebhookSecret.objects.filter(pk__in=[s.pk for s in active[1:]]).update(revoked_at=timezone.now())
    # Its post_save tells the workers that keep a destination's secrets (leads/receivers.py).
    WebhookSecret.objects.create(**owner, prefix=raw[:12], secret_encrypted=encrypt(raw))
    return raw


def destination_rotate_secret(*, destination: DeliveryDestination) -> str:
    return _rotate({"destination": destination})


def partner_rotate_webhook_secret(*, partner: Partner) -> str:
    return _rotate({"partner": partner})


def _retire_old(secrets_of: QuerySet[WebhookSecret]) -> int:
    newest = secrets_of.filter(revoked_at__isnull=True).order_by("-created_at", "-id").first()
    if newest is None:
        return 0
    retired = secrets_of.filter(revoked_at__isnull=True).exclude(pk=newest.pk).update(revoked_at=timezone.now())
    config_changed()  # workers keep a destination's secrets (an UPDATE sends no post_save)
    return retired


def destination_retire_old_secrets(*, destination: DeliveryDestination) -> int:
    """The buyer has switched: keep only the newest secret."""
    return _retire_old(destination.secrets.all())


def partner_retire_old_webhook_secrets(*, partner: Partner) -> int:
    return _retire_old(partner.webhook_secrets.all())

"""Idempotency-Key for API POSTs: the first answer is stored and replayed for 24 hours."""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from leadcrm.errors import Conflict, InvalidInput, Unprocessable

from ..models import IdempotencyRecord, Partner

MAX_KEY_LENGTH = 200


PROCESSING_TIMEOUT = timedelta(seconds=60)  # a first request still "processing" after this died


def idempotent(
    *,
    partner: Partner | None = None,
    user: User | None = None,
    key: str,
    data: object,
    handler: Callable[[str], tuple[int, dict[str, Any]]],
    sandbox: bool = False,
) -> tuple[int, dict[str, Any], bool]:
    """Run handler once per (caller, sandbox or live, key); repeats get the stored (status, body).
    The third value says whether this answer is a replay.

    The caller is a partner (API key) or a staff user (session or token); keys never cross callers.
    `data` is the parsed body. handler gets the request's own key, a digest of the caller, sandbox
    or live, the key and the body: what it creates may keep it, so a repeat whose stored answer was
    lost or has expired finds that again, while the same key with another body names another thing.

    The key is recorded in its own transaction before the work starts, so a repeat that
    arrives while the first is still running sees it and gets 409 instead of a second lead.
    """
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
            extra={"Idempotency-Key": [f"1 to {MAX_KEY_LENGTH} characters."]},
        )
    # Canonically serialised: the same lead with its fields in another order or spacing is the same request.
    request_hash = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    caller: dict[str, Partner | User]
    if partner is not None:
        caller, caller_name = {"partner": partner}, f"partner:{partner.pk}"
    elif user is not None:
        caller, caller_name = {"user": user}, f"user:{user.pk}"
    else:
        raise ValueError("idempotent() needs the calling partner or user.")
    request_key = hashlib.sha256(
        f"{caller_name}\n{'test' if sandbox else 'live'}\n{key}\n{request_hash}".encode()
    ).hexdigest()
    records = IdempotencyRecord.objects.filter(**caller, sandbox=sandbox, key=key)

    def claim() -> IdempotencyRecord:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(**caller, sandbox=sandbox, key=key, request_hash=request_hash)

    # A new key costs one insert here and one update below; a used key is looked at only on conflict.
    try:
        record = claim()
    except IntegrityError:
        existing = records.first()
        if existing is None:  # freed by a concurrent request a moment ago
            raise Conflict("The request could not be recorded; retry it.") from None
        if not _frees_its_key(existing):
            return _replay(existing, request_hash)
        # An expired answer, or a first request whose process died before answering: the key is free.
        records.filter(pk=existing.pk).delete()
        try:
            record = claim()
        except IntegrityError:
            raise Conflict("A request with this Idempotency-Key is being processed; retry shortly.") from None
    try:
        status_code, response_body = handler(request_key)
    except Exception:
        record.delete()  # nothing was stored for this key, so the client may retry it
        raise
    record.status_code, record.response_body = status_code, response_body
    record.save(update_fields=["status_code", "response_body"])
    return status_code, response_body, False


def _frees_its_key(record: IdempotencyRecord) -> bool:
    now = timezone.now()
    if record.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS):
        return True
    return record.status_code is None and record.created_at < now - PROCESSING_TIMEOUT


def _replay(record: IdempotencyRecord, request_hash: str) -> tuple[int, dict[str, Any], bool]:
    if record.request_hash != request_hash:
        raise Unprocessable("This Idempotency-Key was already used with a different request body.")
    if record.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.")
    # Saved together with its status code, from the handler's body.
    return record.status_code, cast(dict[str, Any], record.response_body), True


def idempotency_records_purge() -> int:
    """Forget answers older than the replay window; returns how many were removed."""
    expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=expired).delete()
    return deleted

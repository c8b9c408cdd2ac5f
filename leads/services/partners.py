"""Partners and their API keys: keys are shown once and stored only as a hash."""

import hashlib
import hmac
import ipaddress
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from leadcrm.config_cache import cached
from leadcrm.errors import InvalidInput

from ..models import ApiKey, ApiScope, Partner

KEY_PREFIX = "lcrm"


def _hash(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough; there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    partner: Partner,
    scopes: list[str],
    name: str = "",
    sandbox: bool = False,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the partner; returns the row and the full key, which is never stored."""
    unknown = sorted(set(scopes) - set(ApiScope.values))
    if unknown or not scopes:
        raise InvalidInput(f"Scopes must be some of {', '.join(ApiScope.values)}; got {', '.join(unknown) or 'none'}.")
    prefix = secrets.token_hex(4)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        partner=partner,
        name=name,
        prefix=prefix,
        key_hash=_hash(raw_key),
        scopes=list(dict.fromkeys(scopes)),
        is_sandbox=sandbox,
        expires_at=expires_at,
    )
    return key, raw_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The usable key matching the raw key, or None. Compared in constant time."""
    parts = raw_key.strip().split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    prefix = parts[1][:12]
    # Per process until a key or partner changes (a revoked key stops on the next request).
    key = cached(
        "api-key",
        prefix,
        lambda: ApiKey.objects.select_related("partner").filter(prefix=prefix).first(),
        keep=lambda key: key is not None,  # not an unknown prefix: anyone can send endless made-up keys
    )
    if key is None or not hmac.compare_digest(key.key_hash, _hash(raw_key.strip())):
        return None
    if not key.is_usable or not key.partner.is_active:
        return None
    # At most one write a minute per key: "last used" is for humans, not an audit trail.
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now  # the process's copy too, so it writes once a minute
    return key


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def partner_allows_ip(partner: Partner, ip: str | None) -> bool:
    if not partner.ip_allowlist:
        return True
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    for entry in partner.ip_allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a malformed entry allows nobody; the admin form refuses them anyway
    return False

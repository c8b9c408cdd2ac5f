"""Advertiser secrets: the token of their conversion postbacks, shown once and stored hashed."""

import hashlib
import secrets

from ..models import Advertiser


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def advertiser_postback_token_rotate(*, advertiser: Advertiser) -> str:
    """A new postback token (the old one stops working); returns it for showing once."""
    token = secrets.token_urlsafe(32)
    advertiser.postback_token_hash = token_hash(token)
    advertiser.save(update_fields=["postback_token_hash", "updated_at"])
    return token


def advertiser_for_postback_token(token: str) -> Advertiser | None:
    if not token:
        return None
    return Advertiser.objects.filter(postback_token_hash=token_hash(token), is_active=True).first()

"""Signed links in nurture emails: open pixel, click redirect, unsubscribe.

Each link carries a signed token, so nobody can forge an open or a click, unsubscribe someone
else, or use our domain as an open redirect (a click goes only to the URL that was signed).
"""

import functools
import hashlib
import hmac
import json
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.encoding import force_bytes

_TOKEN_MARK = "LeadcrmTokenMark"  # noqa: S105  a placeholder, not a secret
SALTS = {"open": "nurture.open", "click": "nurture.click", "unsubscribe": "nurture.unsubscribe"}


class BadLink(Exception):
    """The token was tampered with, or is for another kind of link."""


def _absolute(path: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


class _Signer:
    """The tokens of `signing.TimestampSigner(key=secret_key, salt=salt).sign_object`, byte for byte,
    without its per-token costs: Django derives the HMAC key afresh for every token (a hash of salt
    and secret) and makes a new serializer and signer; here the key is derived once, and each token
    is an HMAC of its own text only. `signing.loads` reads them (read_token)."""

    def __init__(self, salt: str, secret_key: str | bytes):
        # Django's salted_hmac(salt + "signer", value, secret_key, algorithm="sha256").
        key = hashlib.sha256(force_bytes(salt + "signer") + force_bytes(secret_key)).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def sign_object(self, value: Any, *, compress: bool = False) -> str:
        # signing.JSONSerializer's bytes; an id's JSON is its digits.
        data = str(value).encode() if type(value) is int else json.dumps(value, separators=(",", ":")).encode("latin-1")
        prefix = ""
        if compress:
            compressed = zlib.compress(data)
            if len(compressed) < len(data) - 1:  # Django keeps the compressed form only when shorter
                data, prefix = compressed, "."
        signed = f"{prefix}{signing.b64_encode(data).decode()}:{_timestamp(int(time.time()))}"
        mac = self._mac.copy()
        mac.update(signed.encode())
        return f"{signed}:{signing.b64_encode(mac.digest()).decode()}"


@functools.lru_cache(maxsize=4)
def _timestamp(second: int) -> str:
    return signing.b62_encode(second)


def _signer(kind: str) -> _Signer:
    """What signing.dumps makes for every token, made once per kind (and secret key)."""
    return _signer_for(SALTS[kind], settings.SECRET_KEY)


@functools.lru_cache(maxsize=16)
def _signer_for(salt: str, secret_key: str | bytes) -> _Signer:
    return _Signer(salt, secret_key)


@functools.lru_cache(maxsize=32)
def _around_token(name: str, script_prefix: str, urlconf: str) -> tuple[str, str]:
    """The link's text before and after its token: every email has a few links, and reversing the
    URL for each costs more than signing it. A signed token needs no quoting (base64, ':' and '.')."""
    before, after = reverse(name, args=[_TOKEN_MARK], urlconf=urlconf).split(_TOKEN_MARK)
    return before, after


LinkPlace = tuple[str, str]  # the script prefix and URL configuration links are reversed in


def link_place() -> LinkPlace:
    """Where links are reversed now: read once for a batch's emails, since reading it (thread- and
    task-local) cost more than signing a link."""
    return get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF


class MessageLinks:
    """The signed links of one message, reversed in `place` (`link_place()` when not given)."""

    def __init__(self, message_id: int, place: LinkPlace | None = None):
        self.message_id = message_id
        self._place = place or link_place()

    def _link(self, name: str, token: str) -> str:
        before, after = _around_token(name, *self._place)
        return f"{_absolute(before)}{token}{after}"

    # A message id is too short for zlib to shorten (Django keeps the shorter form): no compressing.
    def open(self) -> str:
        return self._link("nurture-open", _signer("open").sign_object(self.message_id))

    def click(self, target: str) -> str:
        return self._link("nurture-click", _signer("click").sign_object([self.message_id, target], compress=True))

    def unsubscribe(self) -> str:
        return self._link("nurture-unsubscribe", _signer("unsubscribe").sign_object(self.message_id))


def open_url(message_id: int) -> str:
    return MessageLinks(message_id).open()


def click_url(message_id: int, target: str) -> str:
    return MessageLinks(message_id).click(target)


def unsubscribe_url(message_id: int) -> str:
    return MessageLinks(message_id).unsubscribe()


def read_token(kind: str, token: str) -> Any:
    try:
        value = signing.loads(token, salt=SALTS[kind])
    except signing.BadSignature as error:
        raise BadLink("This link is not valid.") from error
    if kind == "click":
        if not (isinstance(value, list) and len(value) == 2 and urlsplit(str(value[1])).scheme in ("http", "https")):
            raise BadLink("This link is not valid.")
    elif not isinstance(value, int):
        raise BadLink("This link is not valid.")
    return value

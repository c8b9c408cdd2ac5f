"""Signed links in nurture emails: open pixel, click redirect, unsubscribe.

Each link carries a signed token, so nobody can forge an open or a click, unsubscribe someone
else, or use our domain as an open redirect (a click goes only to the URL that was signed).
"""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALTS = {"open": "nurture.open", "click": "nurture.click", "unsubscribe": "nurture.unsubscribe"}


class BadLink(Exception):
    """The token was tampered with, or is for another kind of link."""


def _absolute(path: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


def open_url(message_id: int) -> str:
    token = signing.dumps(message_id, salt=SALTS["open"], compress=True)
    return _absolute(reverse("nurture-open", args=[token]))


def click_url(message_id: int, target: str) -> str:
    token = signing.dumps([message_id, target], salt=SALTS["click"], compress=True)
    return _absolute(reverse("nurture-click", args=[token]))


def unsubscribe_url(message_id: int) -> str:
    token = signing.dumps(message_id, salt=SALTS["unsubscribe"], compress=True)
    return _absolute(reverse("nurture-unsubscribe", args=[token]))


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

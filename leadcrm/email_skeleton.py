"""The bytes of many similar emails, made from one skeleton per shape instead of the email package.

Django turns each EmailMessage into a MIME tree and flattens it with the email package's generator,
which folds every header through `email.header.Header`: for a short text-and-HTML email that costs
more than sending it. Emails of one shape (sender, header names, text or text and HTML, ASCII or not)
differ only in their subject, recipients, header values and bodies, so `SkeletonEmail.wire()` has
Django build the shape once with markers in those places and then puts each email's own values in:
headers folded exactly as the generator folds them (`policy.fold_binary` after Django's own
`forbid_multi_line_headers`), bodies with their line ends made CRLF as the generator makes them.
An email the skeleton cannot hold byte for byte (a body line over 998 bytes, which Django sends
quoted-printable; a body that contains the boundary; attachments, cc, bcc or reply-to; a charset
other than UTF-8) has no wire, and is sent by Django in full.

The only differences from Django's own bytes are the ones Django makes random or timely for every
message anyway: the MIME boundary (one per shape here, checked against each body) and the Date.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from email.policy import compat32
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT, forbid_multi_line_headers, sanitize_address
from django.core.mail.utils import DNS_NAME

Wire = tuple[str, list[str], bytes]  # envelope sender, envelope recipients, the message as sent

_POLICY = compat32.clone(linesep="\r\n")  # what Django's as_bytes(linesep="\r\n") flattens with
_MAX_HEADER_LINE = 78  # compat32's max_line_length: a longer header is folded
_FOLD_AT = frozenset(" \t;,")  # where email.header.Header may fold an ASCII value
_NEWLINE = re.compile(r"\r\n|\r|\n")  # the generator's NLCRE: every line end becomes CRLF
_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
# Headers Django sets from the message's own fields, or in an order of its own: not in a skeleton.
_OWN_HEADERS = {"from", "to", "cc", "reply-to", "date", "subject"}
# A plain dot-atom address: Django's sanitize_address returns it unchanged.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
)


class SkeletonEmail(EmailMultiAlternatives):
    """An EmailMultiAlternatives that can give its wire bytes without the email package."""

    def wire(self) -> Wire | None:
        """(sender, recipients, bytes) as Django's SMTP backend would send them, or None when this
        email is not of a shape a skeleton holds (send it the ordinary way)."""
        encoding = self.encoding or settings.DEFAULT_CHARSET
        if (
            encoding.lower() != "utf-8"
            or self.attachments
            or self.cc
            or self.bcc
            or self.reply_to
            or not self.to
            or not isinstance(self.body, str)
            or not self.body  # Django leaves an empty text part out
            or len(self.alternatives) > 1
            or any(name.lower() in _OWN_HEADERS for name in self.extra_headers)
        ):
            return None
        html = None
        if self.alternatives:
            content, mimetype = self.alternatives[0]
            if mimetype != "text/html" or not isinstance(content, str):
                return None
            html = content
        own_message_id = not any(name.lower() == "message-id" for name in self.extra_headers)
        bodies = [self.body] if html is None else [self.body, html]
        if not all(_fits(body) for body in bodies):
            return None
        skeleton = _skeleton(
            _Shape(
                from_email=self.from_email,
                header_names=tuple(self.extra_headers),
                own_message_id=own_message_id,
                html=html is not None,
                ascii_bodies=tuple(body.isascii() for body in bodies),
                localtime=settings.EMAIL_USE_LOCALTIME,
            )
        )
        if skeleton.boundary and any(skeleton.boundary in body for body in bodies):
            return None
        values = {
            "Subject": _subject_line(str(self.subject)),
            "To": _header_line("To", ", ".join(str(address) for address in self.to)),
            "Date": _date_line(int(time.time()), settings.EMAIL_USE_LOCALTIME),
            "Message-ID": _header_line("Message-ID", make_msgid(domain=DNS_NAME)) if own_message_id else b"",
            **{
                f"header {index}": _header_line(name, value)
                for index, (name, value) in enumerate(self.extra_headers.items())
            },
            **{f"body {index}": _crlf(body).encode() for index, body in enumerate(bodies)},
        }
        data = b"".join(values[part] if isinstance(part, str) else part for part in skeleton.parts)
        return _envelope_address(self.from_email), [_envelope_address(str(a)) for a in self.recipients()], data


def _fits(body: str) -> bool:
    """Django sends the body as it is (7bit or 8bit): no line too long, no lone surrogates."""
    if not body.isascii():
        try:
            body.encode()
        except UnicodeEncodeError:
            return False
    limit = RFC5322_EMAIL_LINE_LENGTH_LIMIT
    # A short body fits by its length only if every character is one byte: "é" * 600 is 1,200 bytes.
    if body.isascii() and len(body) <= limit:
        return True
    return not any(len(line.encode()) > limit for line in body.splitlines())


@dataclass(frozen=True)
class _Shape:
    from_email: str
    header_names: tuple[str, ...]
    own_message_id: bool  # none among the headers: Django makes one for every message
    html: bool
    ascii_bodies: tuple[bool, ...]
    localtime: bool


@dataclass(frozen=True)
class _Skeleton:
    parts: tuple[bytes | str, ...]  # literal bytes, or the name of a value put in
    boundary: str


_MARK = "LeadcrmSkeletonMark{}X"


@functools.lru_cache(maxsize=64)
def _skeleton(shape: _Shape) -> _Skeleton:
    """Django's bytes for the shape, cut where each email's own values go."""
    marks: dict[str, str] = {}

    def mark(name: str, ascii_text: bool = True) -> str:
        marks[name] = _MARK.format(len(marks)) + ("" if ascii_text else "\u00e9")
        return marks[name]

    subject, to = mark("Subject"), mark("To")
    headers = {name: mark(f"header {index}") for index, name in enumerate(shape.header_names)}
    text = mark("body 0", shape.ascii_bodies[0])
    email = EmailMultiAlternatives(subject, text, shape.from_email, [to], headers=headers)
    if shape.html:
        email.attach_alternative(mark("body 1", shape.ascii_bodies[1]), "text/html")
    data = email.message().as_bytes(linesep="\r\n")
    head_end = data.index(b"\r\n\r\n") + 2
    cuts = []
    for own in ("Date", "Message-ID") if shape.own_message_id else ("Date",):
        line = re.search(rb"^" + own.encode() + rb": [^\r\n]*\r\n", data[:head_end], re.MULTILINE)
        if line is None:
            raise ValueError(f"Django wrote no {own} header")
        cuts.append((line.start(), line.end(), own))
    for name, marker in marks.items():
        if name.startswith("body"):
            start = data.index(marker.encode())
            cuts.append((start, start + len(marker.encode()), name))
        else:
            # The whole header line: its value is folded afresh for each email.
            start = data.index(b": " + marker.encode() + b"\r\n")
            start = data.rindex(b"\r\n", 0, start) + 2
            cuts.append((start, data.index(b"\r\n", start) + 2, name))
    parts: list[bytes | str] = []
    position = 0
    for start, end, name in sorted(cuts):
        parts += [data[position:start], name]
        position = end
    parts.append(data[position:])
    boundary = _BOUNDARY.search(data[:head_end])
    return _Skeleton(parts=tuple(parts), boundary=boundary.group(1).decode() if boundary else "")


def _crlf(body: str) -> str:
    return body.replace("\n", "\r\n") if "\r" not in body else _NEWLINE.sub("\r\n", body)


@functools.lru_cache(maxsize=4)
def _date_line(second: int, localtime: bool) -> bytes:
    # formatdate() at the second, as Django's message() calls it: emails of one second share it.
    return _header_line("Date", formatdate(second, localtime=localtime))


def _header_line(name: str, value: str) -> bytes:
    """The header as Django's message and the generator write it."""
    value = str(value)
    if value.isascii() and value.isprintable():
        # A short value is written as it is: compat32 folds only past 78 characters.
        if len(name) + 2 + len(value) <= _MAX_HEADER_LINE:
            return f"{name}: {value}\r\n".encode()
        # A longer one without a place to fold (a link) goes on a continuation line of its own.
        if value and _FOLD_AT.isdisjoint(value):
            return f"{name}: \r\n {value}\r\n".encode()
    return _folded(name, value)


@functools.lru_cache(maxsize=4096)
def _subject_line(subject: str) -> bytes:
    # Django encodes every subject through email.header.Header; subjects repeat, so remember them.
    return _folded("Subject", subject)


def _folded(name: str, value: str) -> bytes:
    name, value = forbid_multi_line_headers(name, value, "utf-8")  # raises BadHeaderError on a newline
    return _POLICY.fold_binary(name, value)


def _envelope_address(address: str) -> str:
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return _sanitized(address)


@functools.lru_cache(maxsize=256)
def _sanitized(address: str) -> str:
    return sanitize_address(address, "utf-8")

"""An email made from a skeleton is, byte for byte, the email Django makes (apart from the boundary, the
Date and a Message-ID Django invents, which differ for every message anyway); one the skeleton cannot
hold exactly is left to Django."""

import re

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import BadHeaderError, sanitize_address

from leadcrm.email_skeleton import SkeletonEmail

UNSUBSCRIBE = "<http://testserver/n/u/" + "eyJhIjoxfQ" * 6 + ":1tK2aB:Zm9vYmFyYmF6cXV4/>"  # longer than a line
SENDER = "LeadCRM <noreply@leadcrm.example>"

CASES = {
    "plain": ("Your solar quote, Jo", "Hello Jo,\nyour quote\n\nUnsubscribe: x\n", "<p>Hello Jo</p>", "jo@example.com"),
    "non-ASCII, long subject": (
        "Ünïcode subject, long enough that Django folds it over more than one line of the header",
        "Héllo\r\nCRLF and\rCR line ends\n",
        "<p>Héllo</p>",
        "jo@example.com",
    ),
    "a line of 997 bytes": ("a" * 100, "x" * 997 + "\n", "<p>" + "y" * 500 + "</p>", "Jo Name <jo@example.com>"),
    "text only, international address": ("Quote", "text", None, "jö@exämple.com"),
    "subject with places to fold": ("Quote; with, commas " + "and words " * 8, "t", "", "a.b+c@sub.example.co.uk"),
    "text without a line end": ("", "only text", None, "x@y.z"),
}


def _comparable(data: bytes) -> bytes:
    data = re.sub(rb"^(Date|Message-ID): [^\r\n]*\r\n", rb"\1: -\r\n", data, flags=re.MULTILINE)
    boundary = re.search(rb'boundary="([^"]+)"', data)
    return data.replace(boundary.group(1), b"BOUNDARY") if boundary else data


def _pair(subject, text, html, to, headers):
    emails = [
        cls(subject, text, SENDER, [to], headers=dict(headers)) for cls in (SkeletonEmail, EmailMultiAlternatives)
    ]
    if html is not None:
        for email in emails:
            email.attach_alternative(html, "text/html")
    return emails


@pytest.mark.parametrize("headers", [{"Message-ID": "<1.2@leadcrm.local>", "List-Unsubscribe": UNSUBSCRIBE}, {}])
@pytest.mark.parametrize("case", CASES)
def test_the_wire_is_djangos_message_byte_for_byte(case, headers):
    skeleton_email, django_email = _pair(*CASES[case], headers)

    sender, recipients, data = skeleton_email.wire()

    assert _comparable(data) == _comparable(django_email.message().as_bytes(linesep="\r\n"))
    assert (sender, recipients) == (
        sanitize_address(django_email.from_email, "utf-8"),
        [sanitize_address(address, "utf-8") for address in django_email.recipients()],
    )


def test_two_emails_of_one_shape_each_carry_their_own_values():
    first, _ = _pair("Hi Ann", "For Ann: http://x/u/1/\n", "<a href='http://x/u/1/'>Ann</a>", "ann@example.com", {})
    second, _ = _pair("Hi Bob", "For Bob: http://x/u/2/\n", "<a href='http://x/u/2/'>Bob</a>", "bob@example.com", {})

    first_data, second_data = first.wire()[2], second.wire()[2]

    assert b"To: ann@example.com\r\n" in first_data and b"bob" not in first_data.lower()
    assert b"To: bob@example.com\r\n" in second_data and b"ann" not in second_data.lower()
    assert b"Subject: Hi Bob\r\n" in second_data and b"http://x/u/2/" in second_data
    ids = [re.search(rb"^Message-ID: (.*)\r\n", data, re.MULTILINE).group(1) for data in (first_data, second_data)]
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "change",
    [
        lambda email: setattr(email, "body", "x" * 999),  # Django sends it quoted-printable
        lambda email: setattr(email, "body", "é" * 600),  # 600 characters, but a 1,200-byte line
        lambda email: email.attachments.append(("a.txt", "a", "text/plain")),
        lambda email: setattr(email, "cc", ["c@example.com"]),
        lambda email: setattr(email, "body", ""),  # Django leaves the text part out
    ],
)
def test_an_email_the_skeleton_cannot_hold_is_left_to_django(change):
    email, _ = _pair(*CASES["plain"], {})
    change(email)

    assert email.wire() is None


def test_a_body_holding_the_boundary_is_left_to_django():
    email, _ = _pair(*CASES["plain"], {})
    boundary = re.search(rb'boundary="([^"]+)"', email.wire()[2]).group(1).decode()
    email.body = f"--{boundary}\n"

    assert email.wire() is None


def test_a_header_with_a_newline_is_refused_as_django_refuses_it():
    email, _ = _pair("Hi\nBcc: victim@example.com", "text", None, "jo@example.com", {})

    with pytest.raises(BadHeaderError):
        email.wire()

"""The links in a received email: tracked clicks, the open pixel, one-click unsubscribe; all signed."""

import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client

from campaigns.tests.factories import CampaignFactory
from leads.models import LeadEvent, OutboxEntry
from leads.services import outbox_process
from leads.tests.factories import LeadFactory
from nurture import follow_ups
from nurture.models import Enrollment, NurtureMessage, Suppression
from nurture.services.engine import nurture_tick
from nurture.services.enrollment import lead_enroll
from nurture.services.tracking import click_url, open_url, unsubscribe_url

from .conftest import email_step, link_path, open_pixel, parts, tracked_links, unsubscribe_link, wait_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def received(smtp, capture, make_flow, tick, start):
    """A captured lead (score 51) has received the first email of a flow over SMTP."""
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="ann@example.com", first_name="Ann")
    assert lead.score == 51
    tick(start)
    [message] = smtp.messages
    return message


def _message() -> NurtureMessage:
    return NurtureMessage.objects.get()


def _tamper(path: str) -> str:
    """Change one character of the signature at the end of a link's token."""
    token = path.rstrip("/").rsplit("/", 1)[1]
    forged = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return path.replace(token, forged)


# --- 2. clicks and opens ------------------------------------------------------------------------
def test_a_click_redirects_to_the_original_url_and_counts_once(client, received):
    _, body = parts(received)
    [link] = tracked_links(body)

    response = client.get(link_path(link))

    assert response.status_code == 302
    assert response["Location"] == "https://example.com/solar/1"
    message = _message()
    assert message.clicked_at is not None and message.opened_at is not None  # a click implies an open
    assert message.lead.score == 61
    assert LeadEvent.objects.filter(kind=LeadEvent.Kind.NURTURE, data__clicked=str(message.public_id)).exists()

    again = client.get(link_path(link))
    assert again.status_code == 302 and again["Location"] == "https://example.com/solar/1"
    message.lead.refresh_from_db()
    assert message.lead.score == 61
    assert LeadEvent.objects.filter(data__clicked=str(message.public_id)).count() == 2


def test_the_open_pixel_is_a_gif_and_marks_the_message_opened(client, received):
    _, body = parts(received)

    response = client.get(link_path(open_pixel(body)))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF8")
    assert "no-cache" in response["Cache-Control"]  # proxies must not swallow later opens
    message = _message()
    assert message.opened_at is not None and message.clicked_at is None
    assert message.lead.score == 56
    client.get(link_path(open_pixel(body)))
    message.lead.refresh_from_db()
    assert message.lead.score == 56  # once per message


def test_tampered_links_are_refused_and_record_nothing(client, received):
    _, body = parts(received)
    click = _tamper(link_path(tracked_links(body)[0]))
    pixel = _tamper(link_path(open_pixel(body)))
    unsubscribe = _tamper(link_path(unsubscribe_link(received)))

    assert client.get(click).status_code == 404
    pixel_response = client.get(pixel)
    assert pixel_response.status_code == 200 and pixel_response["Content-Type"] == "image/gif"  # still an image
    for response in (client.get(unsubscribe), client.post(unsubscribe)):
        assert response.status_code == 400
        assert b"This link is not valid" in response.content

    message = _message()
    assert (message.opened_at, message.clicked_at) == (None, None)
    assert message.lead.score == 51
    assert not Suppression.objects.exists()
    assert message.enrollment.status == Enrollment.Status.ACTIVE


def test_a_click_link_cannot_be_forged_into_an_open_redirect(client, received, settings):
    _, body = parts(received)
    message = _message()
    evil = "https://evil.example/login"
    forged_tokens = [
        signing.dumps([message.pk, evil], key="not-our-secret-key", salt="nurture.click", compress=True),
        signing.dumps([message.pk, evil], salt="nurture.open"),  # our key, another kind of link
        link_path(open_pixel(body)).rstrip("/").rsplit("/", 1)[1],  # a real open token
        link_path(unsubscribe_link(received)).rstrip("/").rsplit("/", 1)[1],  # a real unsubscribe token
        signing.b64_encode(f'[{message.pk},"{evil}"]'.encode()).decode(),  # no signature at all
        # Even a signed token never redirects to anything but http(s).
        signing.dumps([message.pk, "javascript:alert(document.cookie)"], salt="nurture.click"),
    ]

    for token in forged_tokens:
        response = client.get(f"/n/c/{token}/")
        assert response.status_code == 404, token
        assert "Location" not in response

    # Parameters added to a real link do not change where it goes.
    real = link_path(tracked_links(body)[0])
    response = client.get(real, {"url": evil, "next": evil, "target": evil})
    assert response["Location"] == "https://example.com/solar/1"
    assert _message().lead.score == 61  # only the real click counted


@pytest.mark.parametrize(
    "target",
    [
        "https://example.com/quote",  # too short for zlib to shorten: sent as it is
        "https://example.com/solar?page=solar&utm=solar-solar-solar-solar-solar-solar",  # shortened
    ],
)
def test_link_tokens_are_the_ones_django_signing_makes(monkeypatch, settings, target):
    """Tokens are signed without signing.dumps (its costs per token are most of an email's): the
    same bytes, under our secret key, as it makes at the same second."""
    settings.SECRET_KEY = "another-secret-key-for-this-test-0123456789-abcdefghijklmnopqrstuv"
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.25)
    path = urlsplit(settings.SITE_URL).path.rstrip("/")
    expected = {
        open_url(42): f"{path}/n/o/{signing.dumps(42, salt='nurture.open')}/",
        unsubscribe_url(42): f"{path}/n/u/{signing.dumps(42, salt='nurture.unsubscribe')}/",
        click_url(42, target): f"{path}/n/c/{signing.dumps([42, target], salt='nurture.click', compress=True)}/",
    }

    for url, django_path in expected.items():
        assert link_path(url) == django_path
    assert link_path(click_url(42, target)).split("/")[-2].startswith(".") == ("page" in target)


def test_a_link_with_a_query_string_redirects_to_the_same_url(client, make_flow, tick, start, mailoutbox):
    url = "https://example.com/offer?utm_source=nurture&utm_medium=email"
    flow = make_flow(
        email_step(1, body_html='<a href="https://example.com/offer?utm_source=nurture&amp;utm_medium=email">Go</a>')
    )
    lead_enroll(flow=flow, lead=LeadFactory(consent=True))
    tick(start)

    response = client.get(link_path(tracked_links(mailoutbox[0].alternatives[0][0])[0]))

    assert response["Location"] == url


# --- 3. unsubscribe ----------------------------------------------------------------------------
@pytest.fixture
def two_flows_two_leads(smtp, capture, make_flow, tick, start):
    """Ann is in two flows; another lead with her address (another offer) in one of them.
    Ann got email 1 of the first flow."""
    first = make_flow(email_step(1), wait_step(days=2), email_step(2))
    second = make_flow(wait_step(days=1), email_step(1, subject="Second flow"))
    ann = capture(email="ann@example.com", first_name="Ann")
    other = LeadFactory(consent=True, email="ann@example.com")
    lead_enroll(flow=second, lead=other)
    assert Enrollment.objects.filter(status="active").count() == 3
    tick(start)
    assert len(smtp.envelopes) == 1
    return ann, [first, second]


def _assert_unsubscribed(response, smtp, tick, start):
    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    assert b"ann@example.com" in response.content
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("ann@example.com", Suppression.Reason.UNSUBSCRIBED)
    assert set(Enrollment.objects.values_list("status", "exit_reason")) == {("exited", "unsubscribed")}
    assert Enrollment.objects.count() == 3  # both leads, every flow
    assert LeadEvent.objects.filter(kind=LeadEvent.Kind.NURTURE, data__unsubscribed=True).count() == 1

    tick(start + timedelta(days=5))

    assert len(smtp.envelopes) == 1  # nothing more, from any flow


def test_unsubscribe_get_only_asks_for_confirmation(client, smtp, two_flows_two_leads, tick, start):
    path = link_path(unsubscribe_link(smtp.messages[0]))

    response = client.get(path)

    assert response.status_code == 200
    assert b"Unsubscribe?" in response.content
    assert b'<form method="post">' in response.content
    assert "no-cache" in response["Cache-Control"]
    assert not Suppression.objects.exists()
    assert Enrollment.objects.filter(status="active").count() == 3
    tick(start + timedelta(days=2, minutes=1))
    # A link scanner's GET unsubscribes nobody: Ann gets her next email (one a day to her address,
    # whichever of her leads and flows it comes from).
    assert len(smtp.envelopes) == 2


def test_the_confirm_form_unsubscribes_without_a_csrf_token(smtp, two_flows_two_leads, tick, start):
    browser = Client(enforce_csrf_checks=True)
    _, body = parts(smtp.messages[0])
    path = link_path(unsubscribe_link(smtp.messages[0]))
    assert path in body  # the same link is in the email's footer

    response = browser.post(path)

    _assert_unsubscribed(response, smtp, tick, start)


def test_the_rfc_8058_one_click_post_unsubscribes(smtp, two_flows_two_leads, tick, start):
    mail_client = Client(enforce_csrf_checks=True)
    received = smtp.messages[0]
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    response = mail_client.post(
        link_path(unsubscribe_link(received)),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    _assert_unsubscribed(response, smtp, tick, start)


def test_an_unsubscribed_address_never_enters_again_on_a_new_lead(
    client, smtp, received, capture, make_flow, tick, start
):
    client.post(link_path(unsubscribe_link(received)))
    other_offer = CampaignFactory(slug="solar-ca")

    comeback = capture(campaign_=other_offer, email="  ANN@example.com", first_name="Ann")

    assert (comeback.validity, comeback.is_duplicate) == ("valid", False)  # a lead like any other...
    assert not comeback.enrollments.exists()  # ...that no flow takes
    assert comeback.outbox_entries.get(kind=follow_ups.ENROLLMENT).status == OutboxEntry.Status.DONE
    assert lead_enroll(flow=make_flow(email_step(1)), lead=comeback) is None
    tick(start + timedelta(days=10))
    assert len(smtp.envelopes) == 1


def test_a_message_queued_before_the_unsubscribe_is_not_sent(
    client, smtp, received, start, django_capture_on_commit_callbacks
):
    nurture_tick(now=start + timedelta(days=2, minutes=1))  # email 2 is written; its outbox entry waits
    queued = NurtureMessage.objects.get(status=NurtureMessage.Status.QUEUED)
    entry = OutboxEntry.objects.get(kind=follow_ups.EMAIL, payload__message=queued.pk)

    client.post(link_path(unsubscribe_link(received)))
    assert outbox_process(entry_id=entry.pk) == "done"

    queued.refresh_from_db()
    assert queued.status == NurtureMessage.Status.SUPPRESSED
    assert len(smtp.envelopes) == 1

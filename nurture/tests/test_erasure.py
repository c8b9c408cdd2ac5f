"""A lead erased on the person's request leaves nurture and audiences, and its messages forget the address."""

from datetime import timedelta

import pytest

from leads.models import LeadEvent
from leads.services.erasure import lead_erase
from leads.tests.factories import LeadFactory
from nurture.models import Audience, Enrollment, NurtureMessage, Suppression
from nurture.services.audiences import audience_leads, audience_size
from nurture.services.engagement import message_unsubscribe

from .conftest import email_step, wait_step

pytestmark = pytest.mark.django_db


def test_an_erased_lead_leaves_its_flows_and_its_messages_forget_the_address(smtp, capture, make_flow, tick, start):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="ann@example.com", first_name="Ann")
    assert tick(start) == 1
    assert NurtureMessage.objects.get(lead=lead).to_email == "ann@example.com"

    lead_erase(lead=lead)

    enrollment = Enrollment.objects.get(lead=lead)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "personal data erased")
    assert list(NurtureMessage.objects.filter(lead=lead).values_list("to_email", flat=True)) == [""]
    assert lead.events.filter(kind=LeadEvent.Kind.NURTURE, data__reason="personal data erased").exists()
    # Two days on, the second email goes nowhere.

    tick(start + timedelta(days=3))
    assert len(smtp.envelopes) == 1


def test_a_bounce_keeps_the_servers_words_but_not_the_address_and_erasure_clears_them(
    smtp, capture, make_flow, tick, start
):
    smtp.refuse_rcpt = "550 5.1.1 <Ann@Example.com>: Recipient address rejected: User unknown"
    make_flow(email_step(1))
    lead = capture(email="ann@example.com", first_name="Ann")
    tick(start)
    message = NurtureMessage.objects.get(lead=lead)
    assert message.status == NurtureMessage.Status.BOUNCED
    assert "550" in message.error and "User unknown" in message.error
    assert "ann@example.com" not in message.error.lower() and "the recipient" in message.error
    # A message from before the address was left out of its error still had it: erasure clears it.
    NurtureMessage.objects.filter(pk=message.pk).update(error="SMTPRecipientsRefused: {'ann@example.com': (550,)}")

    lead_erase(lead=lead)

    message.refresh_from_db()
    assert (message.status, message.to_email, message.error) == (NurtureMessage.Status.BOUNCED, "", "")


def test_an_erased_lead_is_never_in_an_audience_and_the_size_says_why(campaign):
    audience = Audience.objects.create(name="Everyone")
    kept = LeadFactory(campaign=campaign, consent=True)
    erased = LeadFactory(campaign=campaign, consent=True, phone="+16505551212")
    lead_erase(lead=erased)

    assert list(audience_leads(audience).values_list("pk", flat=True)) == [kept.pk]
    size = audience_size(audience)
    assert (size.leads, size.matching, size.erased) == (1, 2, 1)


def test_an_old_unsubscribe_link_of_an_erased_lead_suppresses_no_one(smtp, capture, make_flow, tick, start):
    make_flow(email_step(1))
    lead = capture(email="ann@example.com", first_name="Ann")
    tick(start)
    message = NurtureMessage.objects.get(lead=lead)
    phone_only = LeadFactory(campaign=lead.campaign, email="", phone="+16505551212", consent=True)
    lead_erase(lead=lead)

    message_unsubscribe(message_id=message.pk)

    assert not Suppression.objects.exists()  # a blank address would have matched every phone-only lead
    assert list(audience_leads(Audience.objects.create(name="All")).values_list("pk", flat=True)) == [phone_only.pk]

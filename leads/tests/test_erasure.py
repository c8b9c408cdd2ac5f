"""Erasing a person's data on their request: blanked everywhere, the lead still counted, nothing sent."""

from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from campaigns.tests.factories import AdvertiserFactory
from leads.models import (
    Auction,
    AuctionBid,
    CallLog,
    DeliveryAttempt,
    DeliveryDestination,
    Lead,
    LeadEvent,
    LeadNote,
    LedgerEntry,
    OutboxEntry,
    Partner,
    SupplierPing,
)
from leads.services import lead_add_note, lead_log_call, lead_set_status
from leads.services.delivery import delivery_outbox_handler
from leads.services.erasure import lead_erase, reason_code
from leads.tests.factories import LeadFactory, delivered

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:leads_lead_changelist"


@pytest.fixture
def person(db):
    """A lead with the person's data in every place we keep it."""
    lead = LeadFactory(
        email="ann.lee@example.com",
        phone="+16505551212",
        first_name="Ann",
        last_name="Lee",
        company="Lee Roofing",
        zip_code="94025",
        message="Call me on 650 555 1212",
        answers={"budget": "Ann's budget"},
        raw_data={"email": "Ann.Lee@Example.com"},
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
        consent=True,
        consent_ip="203.0.113.9",
        status="won",
        sale_amount=Decimal("120.00"),
        status_reason="Ann bought",
    )
    LeadNote.objects.create(lead=lead, body="Ann prefers mornings")
    CallLog.objects.create(lead=lead, outcome="reached", notes="Spoke to Ann at home")
    DeliveryAttempt.objects.create(
        delivery=delivered(lead), outcome="accepted", response_excerpt='{"email": "ann.lee@example.com"}'
    )
    return lead


def act(client, leads, **data):
    return client.post(
        reverse(CHANGELIST),
        {"action": "erase_personal_data", ACTION_CHECKBOX_NAME: [lead.pk for lead in leads], **data},
        follow=True,
    )


def test_a_manager_erases_a_person_after_confirming_and_the_lead_still_counts(client, staff_user_in, person):
    manager = staff_user_in("Managers")
    client.force_login(manager)
    money = list(LedgerEntry.objects.filter(lead=person).values_list("kind", "amount", "currency", "day"))

    confirm_page = act(client, [person])
    erased = act(client, [person], apply="1", confirm="on")

    assert "Erase for good" in confirm_page.content.decode()
    assert "Erased the personal data of 1 lead(s)." in [str(message) for message in erased.context["messages"]]
    lead = Lead.objects.get(pk=person.pk)
    assert (lead.email, lead.phone, lead.first_name, lead.last_name, lead.company, lead.zip_code) == ("",) * 6
    assert (lead.message, lead.answers, lead.raw_data, lead.ip, lead.user_agent, lead.consent_ip) == (
        "",
        {},
        {},
        None,
        "",
        None,
    )
    assert lead.status_reason == "" and lead.erased_at is not None
    assert list(LeadNote.objects.filter(lead=lead).values_list("body", flat=True)) == ["(erased)"]
    assert list(CallLog.objects.filter(lead=lead).values_list("notes", flat=True)) == [""]
    assert list(DeliveryAttempt.objects.values_list("response_excerpt", flat=True)) == [""]
    assert lead.events.get(kind=LeadEvent.Kind.ERASED).actor == manager
    # What it counts for stays: the sale, the campaign, the judgement.
    assert (lead.status, lead.sale_amount, lead.validity) == ("won", person.sale_amount, person.validity)
    assert money  # its sale commission, which reports add up
    assert list(LedgerEntry.objects.filter(lead=lead).values_list("kind", "amount", "currency", "day")) == money


@pytest.mark.parametrize("same_person, erased", [("on", 3), (None, 1)], ids=["with-their-other-leads", "this-lead"])
def test_a_persons_other_leads_are_erased_with_the_one_picked(client, staff_user_in, person, same_person, erased):
    same_email = LeadFactory(email=person.email, phone="")  # another offer, or a duplicate
    same_phone = LeadFactory(email="ann.work@example.com", phone=person.phone)
    stranger = LeadFactory(email="bob@example.com", phone="+16505550000")
    client.force_login(staff_user_in("Managers"))

    confirm_page = act(client, [person]).content.decode()
    data = {"apply": "1", "confirm": "on", **({"same_person": same_person} if same_person else {})}
    response = act(client, [person], **data)

    # Before anything is erased, the page names the other leads the option would take.
    assert 'With "Also their other leads", 2 more lead(s) with the same address or number:' in confirm_page
    assert str(same_email) in confirm_page and str(same_phone) in confirm_page
    assert str(stranger) not in confirm_page

    assert f"Erased the personal data of {erased} lead(s)." in [str(m) for m in response.context["messages"]]
    still_named = set(Lead.objects.filter(erased_at__isnull=True).values_list("pk", flat=True))
    expected = {stranger.pk} if same_person else {stranger.pk, same_email.pk, same_phone.pk}
    assert still_named == expected


def test_strangers_who_typed_the_same_junk_phone_or_address_are_not_erased_with_the_person(client, staff_user_in):
    person = LeadFactory(email="n/a", phone="0000000000")
    stranger = LeadFactory(email="n/a", phone="0000000000")  # invalid both: stored as typed
    client.force_login(staff_user_in("Managers"))

    act(client, [person], apply="1", confirm="on", same_person="on")

    assert list(Lead.objects.filter(erased_at__isnull=True).values_list("pk", flat=True)) == [stranger.pk]


@pytest.mark.parametrize(
    "reason, code",
    [
        ("answers.notes contains roof (was Ann Lee: call me on 650 555 1212)", "answers.notes contains roof"),
        ("answers.notes contains roof (was Ann Lee\n650 555 1212)", "answers.notes contains roof"),
        ("budget >= 1000 (was 500)", "budget >= 1000"),
        ("invalid_email: ann@@example.com", "invalid_email"),
        ("honeypot", "honeypot"),
    ],
)
def test_a_reason_keeps_its_rule_and_drops_what_it_quoted_whatever_that_holds(reason, code):
    assert reason_code(reason) == code


def test_not_even_a_superuser_deletes_a_lead_they_erase_it(client, superuser, person):
    client.force_login(superuser)

    page = client.get(reverse("admin:leads_lead_change", args=[person.pk]))
    deleting = client.post(reverse("admin:leads_lead_delete", args=[person.pk]), {"post": "yes"})
    listing = client.get(reverse(CHANGELIST))

    assert reverse("admin:leads_lead_delete", args=[person.pk]) not in page.content.decode()
    assert deleting.status_code == 403 and Lead.objects.filter(pk=person.pk).exists()
    actions = dict(listing.context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions and "erase_personal_data" in actions


def test_without_the_confirmation_nothing_is_erased(client, staff_user_in, person):
    client.force_login(staff_user_in("Managers"))

    response = act(client, [person], apply="1")

    assert "This field is required." in response.content.decode()
    person.refresh_from_db()
    assert (person.email, person.erased_at) == ("ann.lee@example.com", None)


@pytest.mark.parametrize("group", ["Sales", "Marketing"])
def test_only_managers_may_erase(client, staff_user_in, person, group):
    user = staff_user_in(group)
    if group == "Sales":
        person.assigned_to = user
        person.save()
    client.force_login(user)

    choices = client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices
    response = act(client, [person], apply="1", confirm="on")

    assert "erase_personal_data" not in {name for name, _ in choices}
    assert "No action selected." in [str(message) for message in response.context["messages"]]
    person.refresh_from_db()
    assert person.erased_at is None and person.email == "ann.lee@example.com"


def test_an_erased_lead_is_never_delivered_and_erasing_twice_changes_nothing(person):
    waiting = OutboxEntry.objects.create(lead=person, kind=OutboxEntry.Kind.DELIVERY)
    postback = OutboxEntry.objects.create(lead=person, kind=OutboxEntry.Kind.POSTBACK)

    assert lead_erase(lead=person) is True
    assert lead_erase(lead=person) is False

    waiting.refresh_from_db()
    postback.refresh_from_db()
    assert (waiting.status, waiting.last_error) == ("done", "not sent: the lead's personal data was erased")
    assert postback.status == "pending"  # a postback carries a click id and a payout, no one's data
    assert person.events.filter(kind=LeadEvent.Kind.ERASED).count() == 1
    # A delivery routed afterwards (a held lead released, a redelivery) is skipped, not sent blank.
    late = OutboxEntry.objects.create(lead=person, kind=OutboxEntry.Kind.DELIVERY)
    delivery_outbox_handler(late)
    late.refresh_from_db()
    assert "erased" in late.payload["skipped"]
    assert person.deliveries.count() == 1  # only the one made before


def test_the_lead_page_keeps_no_copy_of_what_staff_and_the_pipeline_wrote(client, staff_user_in, person):
    """Notes, calls and status reasons made the way reps make them: the timeline holds copies too."""
    manager = staff_user_in("Managers")
    lead = Lead.objects.get(pk=person.pk)
    lead_add_note(lead=lead, author=manager, body="Ann prefers mornings, lives at 1 Elm St")
    lead_log_call(lead=lead, rep=manager, outcome="reached", notes="Spoke to Ann at home")
    Lead.objects.filter(pk=lead.pk).update(
        status="working",
        validity_reasons=["invalid_email: The domain name ann-lee.example does not exist."],
        qualification_reasons=["budget >= 1000 (was Ann's 500)"],
    )
    lead_set_status(lead=lead, status="lost", actor=manager, reason="Ann's husband said no")
    client.force_login(manager)

    lead_erase(lead=lead)
    page = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()

    for personal in ("ann.lee@example.com", "Elm St", "Spoke to Ann", "husband", "Ann&#x27;s 500", "ann-lee.example"):
        assert personal not in page, personal
    assert "Erased at" in page and "Personal data erased" in page
    lead.refresh_from_db()
    assert (lead.validity_reasons, lead.qualification_reasons) == (["invalid_email"], ["budget >= 1000"])
    call = lead.events.get(kind=LeadEvent.Kind.CALL)
    assert call.data == {"outcome": "reached", "duration_seconds": 0}  # what happened stays, not what was said


def test_erasure_reaches_an_auctions_post_reasons_and_the_suppliers_ping(person):
    ping = SupplierPing.objects.create(
        partner=Partner.objects.create(name="Supplier"),
        campaign=person.campaign,
        fields={"country": "US", "answers": {"roof": "Ann's flat roof"}, "zip_prefix": "9402"},
        country="US",
        price=Decimal("3.00"),
        currency="USD",
        expires_at=timezone.now(),
        lead=person,
    )
    auction = Auction.objects.create(lead=person, offer=person.offer, floor_price=Decimal("1.00"), currency="USD")
    destination = DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(), name="Bidder", url="https://b.example/"
    )
    bid = AuctionBid.objects.create(
        auction=auction, destination=destination, outcome="bid", post_reason="HTTP 400: ann.lee@example.com exists"
    )

    assert lead_erase(lead=person) is True

    ping.refresh_from_db()
    bid.refresh_from_db()
    assert ping.fields == {"country": "US"}  # what its price was decided on stays
    assert "ann.lee" not in bid.post_reason and bid.post_reason


def test_erasure_forgets_the_api_answers_kept_for_replays_that_quote_the_lead(campaign):
    from rest_framework.test import APIClient

    from leads.models import IdempotencyRecord, Partner
    from leads.services.partners import api_key_create

    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    supplier.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=supplier, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    # A look-alike Cyrillic letter: the judgement's reason quotes the part of the address it is in.
    body = {"campaign": campaign.slug, "email": "\u0430nnalee@example.com", "first_name": "Ann"}
    first = client.post("/api/v1/leads/", body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")
    assert first.status_code == 201
    assert "\u0430nnalee" in str(IdempotencyRecord.objects.get().response_body)

    lead_erase(lead=Lead.objects.get())

    assert not IdempotencyRecord.objects.exists()
    again = client.post("/api/v1/leads/", body, format="json", HTTP_IDEMPOTENCY_KEY="lead-1")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert "nnalee" not in again.content.decode() and "Ann" not in again.content.decode()
    assert Lead.objects.count() == 1

"""The access request page: who may use it, what a bad request is told, and its cost. (The export's
content, nurture's part included, is tested in nurture/tests/test_access_request.py.)"""

import json

import pytest
from django.urls import reverse

from leads.models import DeliveryAttempt, LeadNote
from leads.services.access_request import access_request_export
from leads.tests.factories import LeadFactory, delivered

pytestmark = pytest.mark.django_db

URL = "/admin/access-request/"


@pytest.mark.parametrize("role", ["Sales", "Marketing"])
def test_only_managers_and_superusers_may_export_a_person(client, staff_user_in, role):
    LeadFactory(email="ann@example.com")
    client.force_login(staff_user_in(role))

    assert client.get(URL).status_code == 403
    response = client.post(URL, {"email": "ann@example.com"})
    assert response.status_code == 403
    assert "ann@example.com" not in response.content.decode()


@pytest.mark.parametrize("role", ["Managers", None])
def test_managers_and_superusers_see_the_form_and_the_sidebar_link(client, staff_user_in, role):
    client.force_login(staff_user_in(role))

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "A person asked what we hold about them." in html
    assert 'name="email"' in html and 'name="phone"' in html
    assert f'href="{reverse("access-request")}"' in client.get(reverse("admin:index")).content.decode()


def test_the_sidebar_hides_the_link_from_marketing(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))

    assert f'href="{reverse("access-request")}"' not in client.get(reverse("admin:index")).content.decode()


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Give an email address or a phone number."),
        (
            {"phone": "555 1212"},
            "Enter a valid phone number (start with + and the country code, or choose the country).",
        ),
        ({"phone": "12", "country": "DE"}, "Enter a valid phone number for DE."),
    ],
)
def test_a_request_without_a_usable_contact_shows_the_form_again_with_the_reason(client, superuser, fields, message):
    client.force_login(superuser)

    response = client.post(URL, {"email": "", "phone": "", "country": "", **fields})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert message in response.content.decode()


def test_the_export_is_a_download_that_no_cache_keeps(client, superuser):
    lead = LeadFactory(email="ann@example.com", phone="+4930901820")
    client.force_login(superuser)

    response = client.post(URL, {"email": "", "phone": "030 901820", "country": "DE"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]  # personal data: no copy in a browser or proxy cache
    document = json.loads(response.content)
    assert document["request"]["phone"] == "+4930901820"
    assert [row["public_id"] for row in document["leads"]] == [str(lead.public_id)]


def _person_with_leads(count: int) -> None:
    for number in range(count):
        lead = LeadFactory(email="ann@example.com", phone=f"+1650555{1000 + number}")
        LeadNote.objects.create(lead=lead, body=f"note {number}")
        delivered(lead)


@pytest.mark.parametrize("count", [1, 12])
def test_the_export_costs_the_same_queries_for_one_lead_or_many(django_assert_max_num_queries, count):
    _person_with_leads(count)

    with django_assert_max_num_queries(13):
        document = access_request_export(email="ann@example.com")

    assert len(document["leads"]) == count
    assert all(lead["notes"] and lead["deliveries"] for lead in document["leads"])


def test_the_export_shows_a_partners_address_without_the_key_in_its_query():
    lead = LeadFactory(email="ann@example.com")
    delivery = delivered(lead)
    DeliveryAttempt.objects.create(
        delivery=delivery, url="https://buyer.example/leads?api_key=k-secret-123", status_code=200, outcome="accepted"
    )

    document = access_request_export(email="ann@example.com")

    [attempt] = document["leads"][0]["deliveries"][0]["attempts"]
    assert attempt["url"] == "https://buyer.example/leads"
    assert "k-secret-123" not in json.dumps(document, default=str)


def test_the_export_shows_what_a_buyer_received_without_the_constants_of_its_field_mapping():
    lead = LeadFactory(email="ann@example.com", first_name="Ann")
    delivery = delivered(lead)
    destination = delivery.destination
    destination.field_mapping = {"mail": "email", "name": "first_name", "api_key": {"value": "k-secret-123"}}
    destination.save()

    document = access_request_export(email="ann@example.com")

    assert document["leads"][0]["deliveries"][0]["payload"] == {"mail": "ann@example.com", "name": "Ann"}
    assert "k-secret-123" not in json.dumps(document, default=str)

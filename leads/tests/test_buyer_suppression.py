"""Buyers' suppression lists: a lead on a buyer's list is never sent to that buyer (and only that
buyer), the list is the buyer's own over the API, staff upload it in the admin, and everything is
hashed exactly as the audience exports hash it."""

import hashlib
import io
import itertools

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from campaigns.tests.factories import AdvertiserFactory, UserFactory
from leads.models import ApiScope, BuyerSuppression, Delivery, DeliveryDestination, DeliveryRoute, OutboxEntry, Partner
from leads.selectors import lead_contact_hashes, suppressed_advertiser_ids, suppression_counts
from leads.services import outbox_process
from leads.services.delivery import deliveries_redeliver
from leads.services.partners import api_key_create
from leads.services.signing import destination_rotate_secret
from leads.services.suppression import buyer_suppression_add
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/buyer/suppression/"
REMOVE = "/api/v1/buyer/suppression/remove/"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


# --- Delivery keeps a listed lead away from that buyer, and only that buyer ----------------------


@pytest.fixture
def buyers(campaign, settings, httpserver):
    """Two buyers of the campaign's offer on a real local server: A first in priority, then B."""
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]
    found = {}
    for name, priority, advertiser in (("A", 1, campaign.offer.advertiser), ("B", 2, AdvertiserFactory())):
        destination = DeliveryDestination.objects.create(
            advertiser=advertiser, name=f"Buyer {name}", url=httpserver.url_for(f"/{name}")
        )
        destination_rotate_secret(destination=destination)
        DeliveryRoute.objects.create(offer=campaign.offer, destination=destination, priority=priority)
        httpserver.expect_request(f"/{name}").respond_with_json({"ok": True})
        found[name] = destination
    return found


@pytest.fixture
def deliver(capture, django_capture_on_commit_callbacks):
    numbers = itertools.count(1)

    def run(**fields):
        fields.setdefault("email", f"person{next(numbers)}@example.com")
        fields.setdefault("first_name", "Jo")
        fields.setdefault("country", "US")
        with django_capture_on_commit_callbacks(execute=True):
            return capture(**fields)

    return run


def sent_to(server) -> list[str]:
    return [request.path for request, _ in server.log]


def suppress(destination: DeliveryDestination, **hashes: list[str]) -> None:
    buyer_suppression_add(advertiser=destination.advertiser, hashes_by_kind=hashes)


def test_a_lead_on_a_buyers_list_goes_to_the_next_buyer_and_others_still_reach_the_first(buyers, deliver, httpserver):
    suppress(buyers["A"], email=[sha("listed@example.com")])

    listed = deliver(email="  Listed@Example.com ")  # normalised as the exports normalise it
    other = deliver(email="someone.else@example.com")

    assert sent_to(httpserver) == ["/B", "/A"]
    assert Delivery.objects.get(lead=listed).destination == buyers["B"]
    assert Delivery.objects.get(lead=other).destination == buyers["A"]


def test_a_redelivery_to_a_buyer_that_has_listed_the_lead_since_is_not_sent(buyers, deliver, httpserver):
    lead = deliver(email="later.listed@example.com")
    delivery = Delivery.objects.get(lead=lead)
    assert delivery.destination == buyers["A"] and sent_to(httpserver) == ["/A"]
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)  # as if its buyer had refused it
    suppress(buyers["A"], email=[sha("later.listed@example.com")])

    deliveries_redeliver(deliveries=Delivery.objects.filter(pk=delivery.pk))
    entry = OutboxEntry.objects.filter(lead=lead, kind=OutboxEntry.Kind.DELIVERY).latest("id")
    outbox_process(entry_id=entry.pk)

    delivery.refresh_from_db()
    assert sent_to(httpserver) == ["/A"]  # nothing more went out
    assert delivery.reason == "not sent: the lead is on the buyer's suppression list"


def test_a_phone_on_the_list_keeps_the_lead_away_whatever_way_it_was_typed(buyers, deliver, httpserver):
    suppress(buyers["A"], phone=[sha("+16505551212")])

    lead = deliver(email="", phone="(650) 555-1212")

    assert sent_to(httpserver) == ["/B"]
    assert Delivery.objects.get(lead=lead).destination == buyers["B"]


def test_an_email_with_a_combining_accent_is_kept_away_by_the_listed_address(buyers, deliver, httpserver):
    suppress(buyers["A"], email=[sha("jos\u00e9@example.com")])

    lead = deliver(email="jose\u0301@example.com")

    assert sent_to(httpserver) == ["/B"]
    assert Delivery.objects.get(lead=lead).destination == buyers["B"]


def test_another_buyers_list_does_not_keep_the_lead_from_the_first(buyers, deliver, httpserver):
    suppress(buyers["B"], email=[sha("listed@example.com")])

    lead = deliver(email="listed@example.com")

    assert sent_to(httpserver) == ["/A"]
    assert Delivery.objects.get(lead=lead).destination == buyers["A"]


def test_a_lead_every_buyer_suppresses_is_held_saying_so_and_sent_to_nobody(buyers, deliver, httpserver):
    for destination in buyers.values():
        suppress(destination, email=[sha("listed@example.com")])

    lead = deliver(email="listed@example.com")

    assert httpserver.log == []
    entry = lead.outbox_entries.get(kind=OutboxEntry.Kind.DELIVERY)
    assert entry.payload == {
        "held": "no buyer takes it (Buyer A: the lead is on the buyer's suppression list; "
        "Buyer B: the lead is on the buyer's suppression list)"
    }


@pytest.mark.parametrize("size", [3, 3000])
def test_checking_a_lead_against_every_buyers_list_is_one_query_whatever_the_lists_size(
    campaign, django_assert_num_queries, size
):
    advertisers = [AdvertiserFactory() for _ in range(3)]
    hashes = [sha(f"person{n}@example.com") for n in range(size)]
    for advertiser in advertisers:
        buyer_suppression_add(advertiser=advertiser, hashes_by_kind={"email": hashes})
    lead = LeadFactory(campaign=campaign, email="person1@example.com", phone="+16505551212", country="US")

    with django_assert_num_queries(1):
        found = suppressed_advertiser_ids(lead, [advertisers[0].pk, advertisers[2].pk])

    assert found == {advertisers[0].pk, advertisers[2].pk}


# --- One normalisation and hash (the audience exports use the same: nurture/tests/test_contact_hashes.py)


def test_a_leads_hashes_are_the_platforms_published_vectors(campaign):
    lead = LeadFactory(campaign=campaign, email="john_smith@gmail.com", phone="(650) 555-1212", country="US")

    hashes = lead_contact_hashes(lead)

    assert hashes["email"].startswith("62a14e44f765")  # sha256("john_smith@gmail.com"), Meta's vector
    assert hashes["phone"].startswith("1e231c66")  # sha256("+16505551212"), Google's vector


# --- The API: the buyer's own list -------------------------------------------------------------


def buyer_client(partner: Partner, scopes=(ApiScope.SUPPRESSION_WRITE,)) -> APIClient:
    _, raw_key = api_key_create(partner=partner, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def buyer_a(campaign):
    return Partner.objects.create(name="Buyer A", role=Partner.Role.BUYER, advertiser=campaign.offer.advertiser)


@pytest.fixture
def buyer_b():
    return Partner.objects.create(name="Buyer B", role=Partner.Role.BUYER, advertiser=AdvertiserFactory())


def test_a_buyer_adds_counts_and_removes_its_own_hashes(buyer_a):
    client = buyer_client(buyer_a)
    emails = [sha(f"p{n}@example.com") for n in range(3)]

    added = client.post(API, {"email_hashes": emails, "phone_hashes": [sha("+16505551212").upper()]}, format="json")
    again = client.post(API, {"email_hashes": emails[:2]}, format="json")

    assert (added.status_code, added.json()) == (200, {"added": 4})
    assert again.json() == {"added": 0}  # sending a hash twice changes nothing
    assert client.get(API).json() == {"emails": 3, "phones": 1}
    assert BuyerSuppression.objects.filter(kind="phone").get().hash == sha("+16505551212")  # stored lowercase
    removed = client.post(REMOVE, {"email_hashes": [emails[0], sha("never@example.com")]}, format="json")
    assert removed.json() == {"removed": 1}
    assert client.get(API).json() == {"emails": 2, "phones": 1}


def test_another_buyer_can_neither_see_nor_change_a_buyers_list(buyer_a, buyer_b):
    listed = [sha("customer@example.com")]
    buyer_client(buyer_a).post(API, {"email_hashes": listed}, format="json")
    other = buyer_client(buyer_b)

    assert other.get(API).json() == {"emails": 0, "phones": 0}
    assert other.post(REMOVE, {"email_hashes": listed}, format="json").json() == {"removed": 0}
    assert other.post(API, {"email_hashes": listed}, format="json").json() == {"added": 1}  # its own copy
    assert suppression_counts(advertiser_id=buyer_a.advertiser_id) == {"email": 1, "phone": 0}
    assert suppression_counts(advertiser_id=buyer_b.advertiser_id) == {"email": 1, "phone": 0}


def test_a_bad_hash_refuses_the_whole_call_naming_it_and_adds_nothing(buyer_a):
    response = buyer_client(buyer_a).post(
        API, {"email_hashes": [sha("ok@example.com"), "ann@example.com"], "phone_hashes": ["12" * 31]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "email": ["Item 1: not a SHA-256 hash (64 hexadecimal characters)."],
        "phone": ["Item 0: not a SHA-256 hash (64 hexadecimal characters)."],
    }
    assert not BuyerSuppression.objects.exists()


def test_more_hashes_than_one_call_takes_are_refused(buyer_a, settings):
    hashes = [sha(f"p{n}@example.com") for n in range(settings.BUYER_SUPPRESSION_MAX_HASHES + 1)]

    response = buyer_client(buyer_a).post(
        API, {"email_hashes": hashes, "phone_hashes": [sha("+16505551212")]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "email_hashes": [f"Ensure this field has no more than {settings.BUYER_SUPPRESSION_MAX_HASHES} elements."]
    }
    assert not BuyerSuppression.objects.exists()


def test_a_call_may_fill_both_lists_to_their_limit(buyer_a, settings):
    limit = settings.BUYER_SUPPRESSION_MAX_HASHES
    emails = [sha(f"p{n}@example.com") for n in range(limit)]
    phones = [sha(f"+1650555{n:04d}") for n in range(limit)]

    response = buyer_client(buyer_a).post(API, {"email_hashes": emails, "phone_hashes": phones}, format="json")

    assert response.json() == {"added": 2 * limit}
    assert suppression_counts(advertiser_id=buyer_a.advertiser_id) == {"email": limit, "phone": limit}


def test_only_a_buyer_with_the_scope_keeps_a_list(buyer_a, campaign, staff_client):
    supplier = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)

    assert buyer_client(supplier).get(API).status_code == 404
    assert buyer_client(buyer_a, scopes=(ApiScope.LEADS_READ,)).get(API).status_code == 403
    assert staff_client.get(API).status_code == 403
    assert APIClient().get(API).status_code == 401


# --- The admin: a CSV of hashes, or of plain values hashed on upload ----------------------------


def upload(client, advertiser, text: str, **fields):
    data = {"buyer": advertiser.pk, "file": io.BytesIO(text.encode()), **fields}
    data["file"].name = "list.csv"
    return client.post(reverse("admin:leads_buyersuppression_upload"), data, follow=True)


def test_staff_upload_plain_values_hashed_as_the_exports_hash_them_and_bad_lines_are_named(client, superuser, campaign):
    client.force_login(superuser)
    advertiser = campaign.offer.advertiser
    text = "email,phone,country\n John_Smith@Gmail.com ,(650) 555-1212,US\nnot-an-email,12,\n,020 7946 0958,\n"

    response = upload(client, advertiser, text, default_country="GB")

    assert set(BuyerSuppression.objects.values_list("kind", "hash")) == {
        ("email", sha("john_smith@gmail.com")),
        ("phone", sha("+16505551212")),
        ("phone", sha("+442079460958")),  # no country column value: the form's default country
    }
    page = response.content.decode()
    assert "3 hash(es) added to" in page
    assert "line 3: email is not an email address; line 3: phone is not a valid phone number" in page
    assert "john_smith" not in page.lower()  # plain values are hashed, never stored or shown


def test_staff_upload_an_address_with_a_combining_accent_hashed_as_its_one_character_spelling(
    client, superuser, campaign
):
    client.force_login(superuser)

    upload(client, campaign.offer.advertiser, "email\nJose\u0301@example.com\n", default_country="US")

    assert list(BuyerSuppression.objects.values_list("hash", flat=True)) == [sha("jos\u00e9@example.com")]


def test_staff_upload_a_hashed_export_and_remove_it_again(client, superuser, campaign):
    client.force_login(superuser)
    advertiser = campaign.offer.advertiser
    text = f"sha256_email,sha256_phone\n{sha('a@example.com')},{sha('+16505551212')}\n{sha('b@example.com')},\nzz,\n"

    added = upload(client, advertiser, text)
    assert "3 hash(es) added" in added.content.decode()
    assert "line 4: sha256_email is not a SHA-256 hash" in added.content.decode()
    removed = upload(client, advertiser, text, remove="on")

    assert "3 hash(es) removed" in removed.content.decode()
    assert not BuyerSuppression.objects.exists()


def test_removing_from_a_list_needs_the_permission_to_delete_not_only_to_add(client, campaign):
    advertiser = campaign.offer.advertiser
    buyer_suppression_add(advertiser=advertiser, hashes_by_kind={"email": [sha("a@example.com")]})
    adder = UserFactory(is_staff=True)
    adder.user_permissions.add(Permission.objects.get(codename="add_buyersuppression"))
    client.force_login(adder)

    response = upload(client, advertiser, f"sha256_email\n{sha('a@example.com')}\n", remove="on")

    assert response.status_code == 403
    assert BuyerSuppression.objects.count() == 1


def test_a_file_without_a_known_column_is_refused_and_nothing_is_added(client, superuser, campaign):
    client.force_login(superuser)

    response = upload(client, campaign.offer.advertiser, "name\nAnn\n")

    assert response.status_code == 200
    assert "no column named sha256_email, sha256_phone, email or phone" in response.content.decode()
    assert not BuyerSuppression.objects.exists()


def test_the_list_page_says_what_to_do_when_empty_and_links_the_upload(client, superuser):
    client.force_login(superuser)

    page = client.get(reverse("admin:leads_buyersuppression_changelist")).content.decode()

    assert "POST /api/v1/buyer/suppression/" in page
    assert reverse("admin:leads_buyersuppression_upload") in page

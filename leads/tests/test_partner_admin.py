import hashlib

import pytest
from django.urls import reverse

from campaigns.tests.factories import CampaignFactory
from leads.models import ApiKey, Partner
from leads.services.partners import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db


def test_a_key_created_in_the_admin_is_shown_once_and_stored_as_a_hash(client, staff_user_in):
    partner = Partner.objects.create(name="Acme")
    partner.campaigns.add(CampaignFactory())
    client.force_login(staff_user_in("Managers"))

    response = client.post(
        reverse("admin:leads_apikey_add"),
        {
            "partner": partner.pk,
            "name": "production",
            "scopes": ["leads:write", "leads:read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )

    assert response.status_code == 200, response.content[:500]
    raw_key = response.content.decode().split('<code class="lc-secret">')[1].split("<")[0]
    key = ApiKey.objects.get()
    assert raw_key.startswith(f"lcrm_{key.prefix}_")
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert api_key_authenticate(raw_key) == key
    detail = client.get(reverse("admin:leads_apikey_change", args=[key.pk])).content.decode()
    assert raw_key not in detail and key.prefix in detail


def test_revoked_keys_stop_working(client, staff_user_in):
    key, raw_key = api_key_create(partner=Partner.objects.create(name="Acme"), scopes=["leads:read"])
    client.force_login(staff_user_in("Managers"))

    client.post(reverse("admin:leads_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})

    assert api_key_authenticate(raw_key) is None


@pytest.mark.parametrize("group", ["Sales", "Marketing"])
def test_sales_and_marketing_cannot_create_keys(client, staff_user_in, group):
    client.force_login(staff_user_in(group))
    assert client.get(reverse("admin:leads_apikey_add")).status_code == 403


def test_marketing_sees_a_partners_webhook_url_without_its_query_nor_reads_it_back_by_filter(client, staff_user_in):
    partner = Partner.objects.create(
        name="Acme", role=Partner.Role.SUPPLIER, webhook_url="https://acme.example/hook?key=SECRETKEY"
    )
    listing = reverse("admin:leads_partner_changelist")
    page = reverse("admin:leads_partner_change", args=[partner.pk])

    client.force_login(staff_user_in("Marketing"))
    seen = [client.get(listing), client.get(page), client.get(listing, {"webhook_url__contains": "SECRETK"})]
    assert [response.status_code for response in seen] == [200, 200, 400]  # the filter refused
    for response in seen[:2]:
        assert b"https://acme.example/hook?" in response.content and b"SECRETKEY" not in response.content

    client.force_login(staff_user_in("Managers"))  # who may change it sees it whole, to change it
    assert b"SECRETKEY" in client.get(page).content
    assert b"SECRETKEY" not in client.get(listing).content

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

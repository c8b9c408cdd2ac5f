"""The login lockout through the real admin login page: five wrong passwords for one username from one
address lock that pair out for the cool-off, with a page that says so; nothing else is locked."""

import datetime

import pytest
from axes.models import AccessAttempt
from axes.utils import reset
from django.db.models import F
from django.urls import reverse

from campaigns.tests.factories import CampaignFactory
from leadcrm.staff_login.tokens import staff_token_create
from leads.models import ApiScope, Partner
from leads.services.partners import api_key_create

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # campaigns.tests.factories.UserFactory
ATTACKER = "203.0.113.5"
COLLEAGUE = "198.51.100.20"


def log_in(client, username: str, password: str, address: str = ATTACKER, **headers):
    return client.post(
        reverse("admin:login") + "?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **headers,
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(client, username: str, address: str = ATTACKER, **headers):
    for _ in range(4):
        assert log_in(client, username, "wrong", address, **headers).status_code == 200
    return log_in(client, username, "wrong", address, **headers)


@pytest.fixture
def marketer(staff_user_in):
    return staff_user_in("Marketing", username="marta")


def test_the_fifth_wrong_password_locks_the_user_out_from_that_address_even_with_the_right_one(client, marketer):
    for _ in range(4):
        page = log_in(client, "marta", "wrong")
        assert page.status_code == 200 and "Too many failed logins" not in page.content.decode()

    fifth = log_in(client, "marta", "wrong")
    assert fifth.status_code == 429
    right = log_in(client, "marta", PASSWORD)

    assert right.status_code == 429 and not logged_in(client)
    text = right.content.decode()
    assert "Too many failed logins" in text
    assert "After 5 wrong passwords, “marta” cannot log in from this address for 15 minutes, until" in text
    assert "Ask an administrator" in text
    assert 'id="login-form"' in text  # still Unfold's login page, to try again later
    assert 880 <= int(right["Retry-After"]) <= 900


def test_the_same_user_from_another_address_is_not_locked(client, marketer):
    lock_out(client, "marta")

    assert log_in(client, "marta", PASSWORD, COLLEAGUE).status_code == 302
    assert logged_in(client)


def test_the_lock_lifts_after_the_cool_off(client, marketer):
    lock_out(client, "marta")

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - datetime.timedelta(minutes=14))
    assert log_in(client, "marta", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - datetime.timedelta(minutes=1, seconds=1))

    assert log_in(client, "marta", PASSWORD).status_code == 302
    assert logged_in(client)
    assert not AccessAttempt.objects.exists()  # a good login clears the count


def test_an_administrator_lifts_a_lock_at_once(client, marketer):
    lock_out(client, "marta")
    reset(username="marta")
    assert log_in(client, "marta", PASSWORD).status_code == 302


def test_an_administrator_sees_the_lockout_in_the_admin_and_deleting_it_lifts_it(client, marketer, superuser):
    lock_out(client, "marta")
    attempt = AccessAttempt.objects.get()
    admin = type(client)()
    admin.force_login(superuser)

    listing = admin.get(reverse("admin:axes_accessattempt_changelist"))
    assert listing.status_code == 200
    assert "marta" in listing.content.decode() and "Locked Out" in listing.content.decode()
    admin.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})

    assert log_in(client, "marta", PASSWORD).status_code == 302


def test_behind_a_proxy_the_lock_follows_the_client_address_the_proxy_reports(client, marketer, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = "10.0.0.2"
    lock_out(client, "marta", proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}

    # A forged address in front of the one the proxy appended changes nothing.
    forged = log_in(client, "marta", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.7")
    assert forged.status_code == 429
    # Another person behind the same proxy is not locked.
    assert log_in(client, "marta", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 302


def test_api_keys_and_staff_tokens_are_neither_locked_nor_counted(client, staff_user_in):
    from rest_framework.test import APIClient

    manager = staff_user_in("Managers", username="max")
    lock_out(client, "max")
    attempts = list(AccessAttempt.objects.values_list("failures_since_start", flat=True))
    partner = Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)
    partner.campaigns.add(CampaignFactory())
    _, raw_key = api_key_create(partner=partner, scopes=[ApiScope.LEADS_READ])
    api = APIClient(REMOTE_ADDR=ATTACKER)

    for _ in range(10):
        assert api.get("/api/v1/leads/", HTTP_AUTHORIZATION="Api-Key lck_wrong-key").status_code == 401
    assert api.get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").status_code == 200
    _, token = staff_token_create(user=manager)
    assert api.get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200

    assert list(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == attempts

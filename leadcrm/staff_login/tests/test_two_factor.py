"""The second factor through the real pages: setting up an app from the admin, the code asked after the
password, backup codes, who must use it (REQUIRE_STAFF_2FA), and what an unverified session may reach.

Codes are computed as the phone would, with RFC 6238 from django_otp.oath, from the key the page shows."""

import base64
import datetime
import importlib
import re

import pytest
from django.contrib.auth.models import Group, User
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from leadcrm.encryption import UndecryptableSecret
from leadcrm.staff_login.models import SealedAuthenticator
from leadcrm.staff_login.secrets import backup_code_digest
from leadcrm.staff_login.services import authenticator_confirm, authenticator_start, second_factor_check
from leadcrm.staff_login.tokens import staff_token_create
from leadcrm.tests.test_settings import GOOD_KEY, settings_of

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # campaigns.tests.factories.UserFactory
VERIFY = "/admin/two-factor/code/"
SETUP = "/admin/two-factor/set-up/"


def code_from_key(key_text: str, drift: int = 0) -> str:
    """What an authenticator app shows for the key typed in (drift 1: the next 30-second step)."""
    key = base64.b32decode(key_text.replace(" ", ""))
    return f"{totp(key, drift=drift):06d}"


def shown_key(page) -> str:
    return re.search(r'id="two-factor-key">([A-Z2-7 ]+)<', page.content.decode()).group(1)


def log_in(client, user: User):
    response = client.post(reverse("admin:login") + "?next=/admin/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, "the password was refused"
    return response


def with_app(user: User) -> tuple[str, list[str]]:
    """Give the user a confirmed app as the set-up page would; its key text and backup codes."""
    device = authenticator_start(user=user)
    key_text = base64.b32encode(device.bin_key).decode()
    _, codes = authenticator_confirm(user=user, code=code_from_key(key_text))
    return key_text, codes


def wait_out_throttle(user: User) -> None:
    """django-otp makes each wrong code double the wait before the next try; let that time pass."""
    for model in (TOTPDevice, StaticDevice):
        model.objects.filter(user=user).update(
            throttling_failure_timestamp=F("throttling_failure_timestamp") - datetime.timedelta(minutes=5)
        )


@pytest.fixture
def required(settings):
    settings.REQUIRE_STAFF_2FA = True


@pytest.fixture
def marketer(staff_user_in):
    return staff_user_in("Marketing", username="marta")


def test_a_staff_user_sets_up_an_app_from_the_user_menu_and_sees_the_backup_codes_once(client, marketer):
    log_in(client, marketer)
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200
    assert 'href="/admin/two-factor/"' in dashboard.content.decode()  # "Two-factor authentication" in the user menu
    assert "is off" in client.get("/admin/two-factor/").content.decode()

    page = client.get(SETUP)
    text = page.content.decode()
    assert page.status_code == 200
    assert '<svg role="img" aria-label="QR code"' in text and "<path" in text
    assert not re.search(r"<img[^>]+src=\"https?:", text)  # drawn here, no chart service sees the key
    assert "Your role needs" not in text and 'id="nav-sidebar"' in text  # chosen, so the admin stays around it
    key_text = shown_key(page)
    assert client.get(SETUP).content.decode().count(key_text) == 1  # the same key until confirmed

    confirmed = client.post(SETUP, {"code": code_from_key(key_text)})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/admin/two-factor/backup-codes/"
    device = SealedAuthenticator.objects.get(user=marketer)
    assert device.confirmed and base64.b32encode(device.bin_key).decode() == key_text.replace(" ", "")

    shown = client.get(confirmed["Location"]).content.decode()
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", shown)
    assert len(set(codes)) == 10
    stored = set(StaticToken.objects.filter(device__user=marketer).values_list("token", flat=True))
    assert stored == {backup_code_digest(code) for code in codes}
    again = client.get(confirmed["Location"]).content.decode()
    assert re.findall(r"<li><code>", again) == [] and "You have 10 unused backup codes" in again
    assert "is on" in client.get("/admin/two-factor/").content.decode()


def test_a_wrong_set_up_code_is_refused_and_the_app_stays_unconfirmed(client, marketer):
    log_in(client, marketer)
    key_text = shown_key(client.get(SETUP))
    wrong = f"{(int(code_from_key(key_text)) + 1) % 1_000_000:06d}"

    page = client.post(SETUP, {"code": wrong})

    assert page.status_code == 200 and "That code is not right" in page.content.decode()
    assert not TOTPDevice.objects.filter(user=marketer, confirmed=True).exists()
    assert not StaticDevice.objects.filter(user=marketer).exists()


def test_login_asks_for_the_code_after_the_password(client, marketer):
    key_text, _ = with_app(marketer)
    log_in(client, marketer)

    assert client.get("/admin/")["Location"] == VERIFY
    assert client.get("/admin/leads/lead/")["Location"] == VERIFY + "?next=%2Fadmin%2Fleads%2Flead%2F"
    assert client.get("/admin/two-factor/")["Location"].startswith(VERIFY)
    page = client.get(VERIFY)
    assert page.status_code == 200 and "Enter the 6-digit code" in page.content.decode()

    # The code from the app of the next step (this one was spent confirming the set-up).
    verified = client.post(VERIFY + "?next=%2Fadmin%2Fleads%2Flead%2F", {"code": code_from_key(key_text, drift=1)})
    assert verified["Location"] == "/admin/leads/lead/"
    assert client.get("/admin/leads/lead/").status_code == 200


def test_a_wrong_code_is_refused_and_guessing_is_slowed_down(client, marketer):
    key_text, _ = with_app(marketer)
    log_in(client, marketer)
    right = code_from_key(key_text, drift=1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    refused = client.post(VERIFY, {"code": wrong})
    assert refused.status_code == 200 and "That code is not right" in refused.content.decode()
    assert client.get("/admin/")["Location"] == VERIFY
    too_soon = client.post(VERIFY, {"code": right})
    assert "Too many wrong codes. Wait" in too_soon.content.decode()

    wait_out_throttle(marketer)
    assert client.post(VERIFY, {"code": right})["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_backup_code_logs_in_once(client, marketer):
    _, codes = with_app(marketer)
    log_in(client, marketer)
    used = client.post(VERIFY, {"code": codes[0].upper()}, follow=True)
    assert used.status_code == 200 and "You logged in with a backup code; 9 left" in used.content.decode()
    client.post(reverse("admin:logout"))

    log_in(client, marketer)
    again = client.post(VERIFY, {"code": codes[0]})
    assert again.status_code == 200 and "That code is not right" in again.content.decode()
    wait_out_throttle(marketer)
    assert client.post(VERIFY, {"code": codes[1]})["Location"] == "/admin/"


def test_a_password_only_session_is_anonymous_to_the_api_while_staff_tokens_still_work(client, superuser):
    with_app(superuser)
    log_in(client, superuser)

    assert client.get("/api/v1/leads/").status_code in (401, 403)
    _, token = staff_token_create(user=superuser)
    assert APIClient().get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


@pytest.mark.parametrize("group", [None, "Managers"], ids=["superuser", "manager"])
def test_a_user_who_must_use_it_is_sent_to_set_it_up_and_reaches_nothing_else(client, staff_user_in, required, group):
    user = staff_user_in(group)
    log_in(client, user)

    assert client.get("/admin/")["Location"] == SETUP
    assert client.get("/admin/campaigns/campaign/")["Location"] == SETUP + "?next=%2Fadmin%2Fcampaigns%2Fcampaign%2F"
    assert client.get("/api/v1/leads/").status_code in (401, 403)
    page = client.get(SETUP + "?next=%2Fadmin%2Fcampaigns%2Fcampaign%2F")
    text = page.content.decode()
    assert "Your role needs two-factor authentication" in text and 'id="nav-sidebar"' not in text
    assert 'href="/admin/campaigns/campaign/"' not in text  # no sidebar to wander off through

    confirmed = client.post(
        SETUP + "?next=%2Fadmin%2Fcampaigns%2Fcampaign%2F", {"code": code_from_key(shown_key(page))}
    )
    assert confirmed["Location"] == "/admin/two-factor/backup-codes/?next=%2Fadmin%2Fcampaigns%2Fcampaign%2F"
    codes_page = client.get(confirmed["Location"]).content.decode()
    assert 'href="/admin/campaigns/campaign/"' in codes_page  # "I have saved them: continue"
    assert client.get("/admin/campaigns/campaign/").status_code == 200


def test_other_staff_log_in_with_the_password_alone_even_when_it_is_required(client, marketer, required):
    log_in(client, marketer)
    assert client.get("/admin/").status_code == 200


def test_when_it_is_not_required_a_superuser_logs_in_with_the_password_alone(client, superuser, settings):
    settings.REQUIRE_STAFF_2FA = False
    log_in(client, superuser)
    assert client.get("/admin/").status_code == 200


def test_turning_it_off_takes_a_current_code_and_is_not_offered_to_those_who_must_use_it(client, marketer, settings):
    _, codes = with_app(marketer)
    log_in(client, marketer)
    client.post(VERIFY, {"code": codes[0]})

    refused = client.post("/admin/two-factor/turn-off/", {"code": "nope"}, follow=True)
    assert "That code is not right" in refused.content.decode()
    assert TOTPDevice.objects.filter(user=marketer).exists()
    wait_out_throttle(marketer)
    client.post("/admin/two-factor/turn-off/", {"code": codes[1]})
    assert not TOTPDevice.objects.filter(user=marketer).exists()
    assert not StaticDevice.objects.filter(user=marketer).exists()
    assert client.get("/admin/").status_code == 200  # and the session goes on

    settings.REQUIRE_STAFF_2FA = True
    marketer.groups.clear()
    marketer.is_superuser = True
    marketer.save()  # this session, now without a second factor, ends: the new role needs one
    _, codes = with_app(marketer)
    log_in(client, marketer)
    client.post(VERIFY, {"code": codes[0]})
    overview = client.get("/admin/two-factor/").content.decode()
    assert "cannot be turned off" in overview and "/admin/two-factor/turn-off/" not in overview


def test_an_administrator_resets_a_lost_phone_and_the_user_sets_up_a_new_app(
    client, staff_user_in, superuser, required
):
    manager = staff_user_in("Managers")
    with_app(manager)
    admin = type(client)()
    admin.force_login(superuser)  # an unverified superuser session is sent to set up its own app
    admin.post(SETUP, {"code": code_from_key(shown_key(admin.get(SETUP)))})
    device = TOTPDevice.objects.get(user=manager)

    listing = admin.get(reverse("admin:otp_totp_totpdevice_changelist"))
    assert listing.status_code == 200 and manager.username in listing.content.decode()
    admin.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})

    assert not TOTPDevice.objects.filter(user=manager).exists()
    assert not StaticDevice.objects.filter(user=manager).exists()
    log_in(client, manager)
    assert client.get("/admin/")["Location"] == SETUP


def test_it_is_required_by_default_outside_debug_and_the_environment_decides():
    assert settings_of("REQUIRE_STAFF_2FA", SECRET_KEY=GOOD_KEY) == {"REQUIRE_STAFF_2FA": "True"}
    assert settings_of("REQUIRE_STAFF_2FA", DEBUG="true") == {"REQUIRE_STAFF_2FA": "False"}  # make run's demo
    assert settings_of("REQUIRE_STAFF_2FA", SECRET_KEY=GOOD_KEY, REQUIRE_STAFF_2FA="false") == {
        "REQUIRE_STAFF_2FA": "False"
    }
    lockout = settings_of("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", DEBUG="true", AXES_COOLOFF_MINUTES="30")
    assert lockout == {"AXES_FAILURE_LIMIT": "5", "AXES_COOLOFF_TIME": "0:30:00"}


def test_what_follows_the_password_is_decided_at_login_so_pages_ask_nothing_more(client, marketer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    log_in(client, marketer)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    assert [query["sql"] for query in queries if "otp_" in query["sql"]] == []


def test_a_copy_of_the_database_holds_neither_the_app_s_key_nor_a_backup_code(marketer):
    key_text, codes = with_app(marketer)
    key_hex = base64.b32decode(key_text).hex()

    stored_key = TOTPDevice.objects.values_list("key", flat=True).get(user=marketer)
    stored_codes = list(StaticToken.objects.filter(device__user=marketer).values_list("token", flat=True))
    assert key_hex not in stored_key.lower() and key_text not in stored_key.upper()
    assert len(stored_codes) == 10 and not set(stored_codes) & set(codes)
    # django-otp's own model cannot read the stored key, so it can check no code against it.
    with pytest.raises(ValueError):
        TOTPDevice.objects.get(user=marketer).verify_token(code_from_key(key_text, drift=1))
    assert second_factor_check(user=marketer, code=code_from_key(key_text, drift=1)).backup_codes_left is None
    assert second_factor_check(user=marketer, code=codes[3]).backup_codes_left == 9


def test_keys_sealed_under_another_encryption_key_fail_with_a_clear_error(marketer, settings):
    key_text, _ = with_app(marketer)
    settings.FIELD_ENCRYPTION_KEY = "another-key-than-the-one-that-sealed-it"

    with pytest.raises(UndecryptableSecret, match="FIELD_ENCRYPTION_KEY"):
        second_factor_check(user=marketer, code=code_from_key(key_text, drift=1))


def test_the_migration_seals_keys_and_digests_backup_codes_stored_in_the_clear_and_they_still_work(marketer):
    """What django-otp had stored before leadcrm.staff_login's migration 0001: both in the clear."""
    from django.apps import apps

    migration = importlib.import_module("leadcrm.staff_login.migrations.0001_sealed_authenticator_keys")

    key_hex = "3132333435363738393031323334353637383930"  # RFC 6238's test key
    TOTPDevice.objects.create(user=marketer, name="Authenticator app", key=key_hex, confirmed=True)
    backup = StaticDevice.objects.create(user=marketer, name="Backup codes", confirmed=True)
    StaticToken.objects.bulk_create(StaticToken(device=backup, token=code) for code in ("abcd2345", "wxyz6789"))

    migration.seal_secrets(apps, None)
    migration.seal_secrets(apps, None)  # a second run changes nothing

    assert TOTPDevice.objects.get(user=marketer).key.startswith("aesgcm1$")
    assert set(StaticToken.objects.values_list("token", flat=True)) == {
        backup_code_digest("abcd2345"),
        backup_code_digest("wxyz6789"),
    }
    key_text = base64.b32encode(bytes.fromhex(key_hex)).decode()
    assert second_factor_check(user=marketer, code=code_from_key(key_text)).backup_codes_left is None
    assert second_factor_check(user=marketer, code="ABCD-2345").backup_codes_left == 1

    migration.unseal_secrets(apps, None)
    assert TOTPDevice.objects.get(user=marketer).key == key_hex
    assert not StaticToken.objects.exists()  # digests cannot be turned back: renewed from the two-factor page


def user_form_data(user: User, **changes) -> dict:
    """What the admin's user page posts back for this user, with the changes."""
    joined = timezone.localtime(user.date_joined)
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": list(user.groups.values_list("pk", flat=True)),
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        **changes,
    }


def test_making_a_user_a_manager_ends_the_sessions_they_opened_with_the_password_alone(
    client, marketer, superuser, required
):
    log_in(client, marketer)  # marketing needs no second factor: the password alone lets them in
    assert client.get("/admin/").status_code == 200
    admin = type(client)()
    admin.force_login(superuser)
    admin.post(SETUP, {"code": code_from_key(shown_key(admin.get(SETUP)))})

    managers = Group.objects.get(name="Managers")
    changed = admin.post(
        reverse("admin:auth_user_change", args=[marketer.pk]), user_form_data(marketer, groups=[managers.pk])
    )

    assert changed.status_code == 302 and list(marketer.groups.all()) == [managers]
    assert client.get("/admin/")["Location"].startswith(reverse("admin:login"))
    assert admin.get("/admin/").status_code == 200  # the admin's own session, verified by a code, goes on
    log_in(client, marketer)
    assert client.get("/admin/")["Location"] == SETUP


def test_becoming_a_superuser_or_joining_the_managers_from_the_group_ends_password_only_sessions(
    client, staff_user_in, required
):
    first, second = staff_user_in("Marketing", username="first"), staff_user_in("Sales", username="second")
    sessions = {}
    for user in (first, second):
        sessions[user.username] = type(client)()
        log_in(sessions[user.username], user)
        assert sessions[user.username].get("/admin/").status_code == 200

    first.last_name = "Renamed"
    first.save()  # not a promotion: the session goes on
    assert sessions["first"].get("/admin/").status_code == 200
    first.is_superuser = True
    first.save()
    assert sessions["first"].get("/admin/")["Location"].startswith(reverse("admin:login"))
    assert sessions["second"].get("/admin/").status_code == 200

    Group.objects.get(name="Managers").user_set.add(second)
    assert sessions["second"].get("/admin/")["Location"].startswith(reverse("admin:login"))


def test_setting_up_an_app_ends_the_user_s_other_password_only_sessions_but_not_this_one(client, marketer):
    other = type(client)()
    log_in(other, marketer)
    log_in(client, marketer)
    page = client.get(SETUP)
    assert client.post(SETUP, {"code": code_from_key(shown_key(page))}).status_code == 302

    assert client.get("/admin/").status_code == 200
    assert other.get("/admin/")["Location"].startswith(reverse("admin:login"))
    log_in(other, marketer)
    assert other.get("/admin/")["Location"].startswith(VERIFY)


def test_a_session_decided_before_a_deployment_required_a_second_factor_is_decided_again(
    client, staff_user_in, settings
):
    settings.REQUIRE_STAFF_2FA = False
    manager = staff_user_in("Managers")
    log_in(client, manager)
    assert client.get("/admin/").status_code == 200

    settings.REQUIRE_STAFF_2FA = True  # the deployment turns the rule on; the session is still open
    assert client.get("/admin/")["Location"] == SETUP

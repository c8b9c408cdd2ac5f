"""Staff API tokens: made in the admin, shown once, stored as digests, and still DRF's `Token` header."""

import importlib

import pytest
from django.apps import apps
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leadcrm.staff_login.tokens import staff_token_create, staff_token_digest

pytestmark = pytest.mark.django_db


def calls_the_api(token: str) -> int:
    return APIClient().get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Token {token}").status_code


def test_a_superuser_makes_a_token_that_is_shown_once_and_stored_only_as_its_digest(client, superuser, staff_user_in):
    manager = staff_user_in("Managers", username="mona")
    client.force_login(superuser)

    page = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": manager.pk})

    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    shown = page.context["raw_token"]
    assert "It is not stored and cannot be shown again" in page.content.decode() and shown in page.content.decode()
    stored = Token.objects.get(user=manager)
    # A copy of the database holds the digest, which does not authenticate; the shown token does.
    assert stored.key == staff_token_digest(shown) != shown
    assert (calls_the_api(shown), calls_the_api(stored.key)) == (200, 401)
    listing = client.get(reverse("admin:authtoken_tokenproxy_changelist")).content.decode()
    assert "mona" in listing and stored.key not in listing and shown not in listing


def test_a_new_token_replaces_the_users_earlier_one():
    from django.contrib.auth.models import User

    user = User.objects.create_user("sam", is_staff=True, is_superuser=True)
    _, first = staff_token_create(user=user)
    _, second = staff_token_create(user=user)

    assert (calls_the_api(first), calls_the_api(second)) == (401, 200)


def test_the_migration_digests_tokens_stored_in_the_clear_and_they_still_work(superuser):
    """What DRF had stored before leadcrm.staff_login's migration 0002: the token itself."""
    migration = importlib.import_module("leadcrm.staff_login.migrations.0002_staff_token_digests")
    clear = Token.objects.create(user=superuser, key="0123456789abcdef0123456789abcdef01234567")
    assert calls_the_api(clear.key) == 401  # read as a digest, a clear key no longer authenticates

    migration.digest_tokens(apps, None)

    assert list(Token.objects.values_list("key", flat=True)) == [staff_token_digest(clear.key)]
    assert calls_the_api(clear.key) == 200
    migration.remove_tokens(apps, None)
    assert not Token.objects.exists()  # digests cannot be turned back: staff are given new tokens

"""Configuration read on every post (the campaign with its offer, source and rules, the API key, the
blocked domains) is kept per process and reloaded everywhere when staff change it."""

import multiprocessing
import re

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from leadcrm import config_cache
from leads.models import BlockedEmailDomain, Lead, Partner
from leads.services.partners import api_key_create, api_key_revoke

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")


def supplier_client(campaign, name="Cached supplier") -> tuple[APIClient, Partner]:
    partner = Partner.objects.create(name=name)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client, partner


def post(client, campaign, number: int, **extra):
    body = {"campaign": campaign.slug, "email": f"c{number}@example.com", "phone": f"+1650555{number:04d}"}
    return client.post("/api/v1/leads/", body, format="json", **extra)


@pytest.mark.django_db
def test_a_new_api_lead_costs_at_most_six_queries_once_the_process_is_warm(campaign):
    client, _ = supplier_client(campaign)
    for number in range(2):  # the first posts load the configuration and the source's record
        assert post(client, campaign, number).status_code == 201

    with CaptureQueriesContext(connection) as queries:
        response = post(client, campaign, 2)

    statements = [
        query["sql"] for query in queries.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)
    ]
    assert response.status_code == 201
    assert len(statements) <= 6, statements
    assert not any("campaigns_campaign" in sql or "leads_apikey" in sql for sql in statements)
    if connection.vendor == "postgresql":  # where one execute may hold several statements
        # The lead, its share of the daily rollups, its timeline and follow-ups: one round trip, after
        # the one that locks its contacts, finds its original and takes its id.
        assert len(statements) == 2, statements
        assert "nextval" in statements[0]
        assert all(
            f'INSERT INTO "{table}"' in statements[1] or f"INSERT INTO {table}" in statements[1]
            for table in ("leads_lead", "reporting_dailyrollup", "leads_leadevent", "leads_outboxentry")
        ), statements[1]


class _CountingCache:
    """The configured cache, counting the reads of the configuration's version (a Redis round trip each)."""

    def __init__(self, cache):
        self.cache, self.version_reads = cache, 0

    def get(self, key, *args, **kwargs):
        self.version_reads += key == config_cache.VERSION_KEY
        return self.cache.get(key, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cache, name)


@pytest.mark.django_db
def test_a_post_reads_the_configuration_version_once(campaign, monkeypatch):
    client, _ = supplier_client(campaign)
    assert post(client, campaign, 0).status_code == 201  # loads the key, campaign, domains, payouts
    counting = _CountingCache(config_cache.cache)
    monkeypatch.setattr(config_cache, "cache", counting)

    assert post(client, campaign, 1).status_code == 201
    assert counting.version_reads == 1
    assert post(client, campaign, 2).status_code == 201
    assert counting.version_reads == 2  # and again on the next request, which sees any change


def _serve(commands, answers, slug, raw_key):
    """The other web process: answers each command with a post's status code."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    for number in iter(commands.get, None):
        body = {"campaign": slug, "email": f"p{number}@example.com"}
        if number >= 100:
            body["email"] = f"p{number}@blocked.example"
        answers.put(client.post("/api/v1/leads/", body, format="json").status_code)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.slow
def test_an_admin_change_takes_effect_on_the_other_processs_next_request(campaign, settings, private_redis):
    _, port = private_redis
    settings.CACHES = {  # shared by both processes, as Redis is in production
        "default": {"BACKEND": "leadcrm.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    from django.core.cache import cache

    partner = Partner.objects.create(name="Two processes")
    partner.campaigns.add(campaign)
    key, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    context = multiprocessing.get_context("fork")
    commands, answers = context.Queue(), context.Queue()
    other = context.Process(target=_serve, args=(commands, answers, campaign.slug, raw_key))
    for database in connections.all():
        database.close()  # the child opens its own: a socket both used would break both
    other.start()
    try:
        commands.put(1)
        assert answers.get(timeout=30) == 201  # the other process now holds the key and the campaign
        commands.put(100)
        assert answers.get(timeout=30) == 201

        BlockedEmailDomain.objects.create(domain="blocked.example")
        commands.put(101)
        assert answers.get(timeout=30) == 201
        assert Lead.objects.get(email="p101@blocked.example").validity != "valid"  # judged with the new list

        api_key_revoke(key=key)
        commands.put(2)
        assert answers.get(timeout=30) == 401  # the revoked key stops at once
    finally:
        commands.put(None)
        other.join(timeout=30)
        cache.clear()


@pytest.mark.django_db
def test_made_up_pages_campaigns_and_keys_are_not_kept_by_the_process(client, campaign):
    campaign.status = "active"
    campaign.save()
    api, _ = supplier_client(campaign)
    stranger = APIClient()
    page = campaign.landing_pages.get()
    assert client.get(page.get_absolute_url()).status_code == 200  # what is real is kept
    assert client.get(f"/c/{campaign.slug}/").status_code == 302
    assert post(api, campaign, 0).status_code == 201
    kept = len(config_cache._entries)

    for number in range(50):
        assert client.get(f"/l/no-such-page-{number}/").status_code == 404
        assert client.get(f"/c/no-such-campaign-{number}/").status_code == 404
        body = {"campaign": f"no-such-campaign-{number}", "email": "a@example.com"}
        assert api.post("/api/v1/leads/", body, format="json").status_code == 400
        stranger.credentials(HTTP_AUTHORIZATION=f"Api-Key lcrm_madeup{number:06d}_secret")
        assert stranger.post("/api/v1/leads/", body, format="json").status_code == 401

    assert len(config_cache._entries) == kept


@pytest.mark.django_db
def test_a_click_is_its_own_insert_once_the_process_knows_the_campaign(client, campaign):
    campaign.status = "active"
    campaign.save()
    assert client.get(f"/c/{campaign.slug}/", {"clickid": "warm"}).status_code == 302

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/c/{campaign.slug}/", {"clickid": "c-2", "zone": "9"})

    statements = [
        query["sql"] for query in queries.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)
    ]
    assert response.status_code == 302 and response["Location"].endswith("?click_id=c-2")
    # The click alone: no campaign lookup, and the rollups take it later (reporting's click fold).
    assert [sql.split(" ")[0] + " " + sql.split(" ")[2] for sql in statements] == ['INSERT "campaigns_click"']


@pytest.mark.django_db
def test_a_landing_form_post_costs_at_most_eight_queries_once_the_process_is_warm(client, campaign, settings):
    settings.LEAD_MIN_FORM_SECONDS = 0
    page = campaign.landing_pages.get()
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

    def form_state() -> str:
        form = client.get(page.get_absolute_url()).content.decode()
        return re.search(r'name="state" value="([^"]+)"', form).group(1)

    def send(number: int, state: str):
        data = {"state": state, "step": "0", "email": f"f{number}@example.com", "first_name": "Fay"}
        return client.post(page.get_absolute_url(), data, HTTP_USER_AGENT=browser)

    for number in range(2):
        assert send(number, form_state()).status_code == 302
    state = form_state()
    with CaptureQueriesContext(connection) as queries:
        response = send(2, state)

    statements = [
        query["sql"] for query in queries.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)
    ]
    assert response.status_code == 302
    assert len(statements) <= 8, statements
    assert not any("campaigns_landingpage" in sql or "leads_qualificationrule" in sql for sql in statements)
    if connection.vendor == "postgresql":  # where one execute may hold several statements
        # The consent certificate and the rollup share go with the timeline and follow-ups.
        certificate = [sql for sql in statements if "leads_consentcertificate" in sql]
        assert len(certificate) == 1
        assert all(
            table in certificate[0] for table in ("reporting_dailyrollup", "leads_leadevent", "leads_outboxentry")
        )


@pytest.mark.django_db
def test_a_new_api_lead_with_an_idempotency_key_costs_at_most_eight_queries_and_a_replay_says_so(campaign):
    client, _ = supplier_client(campaign)
    for number in range(2):
        assert post(client, campaign, number, HTTP_IDEMPOTENCY_KEY=f"warm-{number}").status_code == 201

    with CaptureQueriesContext(connection) as queries:
        first = post(client, campaign, 2, HTTP_IDEMPOTENCY_KEY="order-2")
    replay = post(client, campaign, 2, HTTP_IDEMPOTENCY_KEY="order-2")

    statements = [
        query["sql"] for query in queries.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)
    ]
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    assert len(statements) <= 8, statements
    assert (replay.status_code, replay.json(), replay["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert Lead.objects.filter(email="c2@example.com").count() == 1

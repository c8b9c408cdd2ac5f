"""The API keeps taking leads while Redis, which holds the throttle counters, is down: a private
redis-server is stopped in the middle of the posts, and every post still answers 201."""

import logging

import pytest
from rest_framework.test import APIClient

from leads.models import Lead, Partner
from leads.services.partners import api_key_create

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_every_post_answers_201_while_the_cache_s_redis_is_stopped(private_redis, settings, campaign, caplog):
    server, port = private_redis
    settings.CACHES = {
        "default": {
            "BACKEND": "leadcrm.cache.ResilientRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    partner = Partner.objects.create(name="Outage supplier", rate_limit_per_minute=1000)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    def post(number: int):
        return client.post(
            "/api/v1/leads/",
            {"campaign": campaign.slug, "email": f"outage{number}@example.com", "first_name": "Olga"},
            format="json",
        )

    before = [post(number).status_code for number in range(5)]
    server.kill()
    server.wait()
    with caplog.at_level(logging.WARNING, logger="leadcrm.cache"):
        during = [post(number).status_code for number in range(5, 15)]

    assert before == [201] * 5 and during == [201] * 10
    assert Lead.objects.filter(email__startswith="outage").count() == 15
    warnings = [record.getMessage() for record in caplog.records if record.name == "leadcrm.cache"]
    assert len(warnings) == 1 and warnings[0].startswith("Redis cache unreachable (ConnectionError)")


def test_the_throttle_still_counts_in_the_process_while_redis_is_down(private_redis, settings, campaign):
    server, port = private_redis
    settings.CACHES = {
        "default": {"BACKEND": "leadcrm.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    server.kill()
    server.wait()
    partner = Partner.objects.create(name="Limited supplier", rate_limit_per_minute=3)
    partner.campaigns.add(campaign)
    _, raw_key = api_key_create(partner=partner, scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    statuses = [
        client.post(
            "/api/v1/leads/", {"campaign": campaign.slug, "email": f"t{n}@example.com"}, format="json"
        ).status_code
        for n in range(4)
    ]

    assert statuses == [201, 201, 201, 429]

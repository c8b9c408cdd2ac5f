import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Click
from campaigns.tests.factories import CampaignFactory, LandingPageFactory
from campaigns.visitor import parse_user_agent

pytestmark = pytest.mark.django_db

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def campaign():
    campaign = CampaignFactory(slug="push-solar", traffic_source__click_id_param="clickid")
    LandingPageFactory(campaign=campaign, slug="solar-form")
    return campaign


def test_click_is_recorded_and_redirected_to_the_landing_page_with_its_click_id(client, campaign):
    response = client.get(
        "/c/push-solar/",
        {"clickid": "src-123", "sub1": "zone9", "zone": "4411", "creative": "cr7", "carrier": "Verizon"},
        HTTP_USER_AGENT=IPHONE,
        HTTP_CF_IPCOUNTRY="us",
        HTTP_REFERER="https://publisher.example/article",
        REMOTE_ADDR="203.0.113.7",
    )

    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/l/solar-form/"
    assert parse_qs(target.query) == {"click_id": ["src-123"]}
    click = Click.objects.get()
    assert click.campaign == campaign and click.traffic_source == campaign.traffic_source
    assert click.click_id == "src-123"
    assert click.sub_ids == {"sub1": "zone9", "zone": "4411", "creative": "cr7"}
    assert (click.device_type, click.os, click.browser) == ("mobile", "ios", "Mobile Safari")
    assert click.country == "US"
    assert click.carrier == "Verizon"
    assert str(click.ip) == "203.0.113.7"
    assert click.referrer == "https://publisher.example/article"
    assert click.is_bot is False
    assert click.off_target_reasons == []


def test_click_without_source_click_id_gets_a_generated_one(client, campaign):
    response = client.get("/c/push-solar/", HTTP_USER_AGENT=WINDOWS_CHROME)

    click = Click.objects.get()
    assert len(click.click_id) == 32
    assert response["Location"].endswith(f"click_id={click.click_id}")
    assert (click.device_type, click.os, click.browser) == ("desktop", "windows", "Chrome")


def test_macros_the_source_left_unfilled_are_no_values(client, campaign):
    params = {"clickid": "{clickid}", "zone": "[zoneid]", "sub1": "%%SUBID%%", "sub2": "${sub2}", "creative": "cr7"}

    response = client.get("/c/push-solar/", params, HTTP_USER_AGENT=WINDOWS_CHROME)

    click = Click.objects.get()
    assert len(click.click_id) == 32  # one of our own, not "{clickid}" shared by every such click
    assert response["Location"].endswith(f"click_id={click.click_id}")
    assert click.sub_ids == {"creative": "cr7"}


def test_a_head_request_learns_where_the_link_goes_and_counts_no_click(client, campaign):
    response = client.head("/c/push-solar/", {"clickid": "h1"}, HTTP_USER_AGENT=WINDOWS_CHROME)

    assert (response.status_code, urlsplit(response["Location"]).path) == (302, "/l/solar-form/")
    assert not Click.objects.exists()


def test_tablets_and_bots_are_told_apart(client, campaign):
    client.get("/c/push-solar/", HTTP_USER_AGENT=IPAD)
    client.get(
        "/c/push-solar/", HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    )

    tablet, bot = Click.objects.order_by("id")
    assert tablet.device_type == "tablet"
    assert bot.is_bot is True and bot.device_type == ""


def test_country_parameter_is_used_when_no_proxy_header(client, campaign):
    client.get("/c/push-solar/", {"country": "deu"})
    client.get("/c/push-solar/", {"country": "ZZ"})
    client.get("/c/push-solar/", {"country": "uk"})  # not ISO, but what everyone writes for GB

    assert list(Click.objects.order_by("id").values_list("country", flat=True)) == ["DE", "", "GB"]


def test_proxy_country_header_wins_over_the_parameter(client, campaign):
    client.get("/c/push-solar/", {"country": "DE"}, HTTP_CF_IPCOUNTRY="FR")
    assert Click.objects.get().country == "FR"


def test_client_ip_header_is_read_only_when_configured(client, campaign, settings):
    client.get("/c/push-solar/", HTTP_X_REAL_IP="198.51.100.1", REMOTE_ADDR="10.0.0.2")
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    client.get("/c/push-solar/", HTTP_X_REAL_IP="198.51.100.1", REMOTE_ADDR="10.0.0.2")

    assert [str(ip) for ip in Click.objects.order_by("id").values_list("ip", flat=True)] == [
        "10.0.0.2",
        "198.51.100.1",
    ]


def test_forwarded_for_takes_the_address_our_proxy_appended_not_the_forgeable_first_one(client, campaign, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    client.get("/c/push-solar/", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7", REMOTE_ADDR="10.0.0.2")
    assert str(Click.objects.get().ip) == "198.51.100.7"


def test_country_header_is_ignored_unless_configured(client, campaign, settings):
    settings.COUNTRY_HEADER = ""
    client.get("/c/push-solar/", HTTP_CF_IPCOUNTRY="FR")
    assert Click.objects.get().country == ""


def test_off_target_click_is_kept_and_marked_with_reasons(client):
    campaign = CampaignFactory(slug="us-mobile", target_countries=["US", "CA"], target_device_types=["mobile"])
    LandingPageFactory(campaign=campaign)

    response = client.get("/c/us-mobile/", HTTP_CF_IPCOUNTRY="DE", HTTP_USER_AGENT=WINDOWS_CHROME)

    assert response.status_code == 302
    click = Click.objects.get()
    assert click.off_target_reasons == [
        "off_target_country: DE not in US, CA",
        "off_target_device_type: desktop not in mobile",
    ]


def test_external_landing_url_keeps_its_own_query(client):
    campaign = CampaignFactory(slug="ext", landing_url="https://offer.example/lp?lang=en")

    response = client.get(f"/c/{campaign.slug}/", {"clickid": "abc"})

    assert response["Location"] == "https://offer.example/lp?lang=en&click_id=abc"


@pytest.mark.parametrize(
    "changes",
    [
        {"status": Campaign.Status.PAUSED},
        {"status": Campaign.Status.DRAFT},
        {"status": Campaign.Status.ENDED},
        {"end_date": datetime.date(2020, 1, 1), "start_date": datetime.date(2019, 1, 1)},
        {"start_date": datetime.date(2999, 1, 1)},
    ],
)
def test_campaign_not_running_gets_404_and_no_click(client, campaign, changes):
    Campaign.objects.filter(pk=campaign.pk).update(**changes)

    response = client.get("/c/push-solar/")

    assert response.status_code == 404
    assert not Click.objects.exists()


def test_unknown_campaign_gets_404(client, campaign):
    assert client.get("/c/no-such-campaign/").status_code == 404
    assert client.get("/c/" + "x" * 5000 + "/").status_code == 404
    assert not Click.objects.exists()


def test_active_campaign_without_any_landing_page_gets_404(client):
    CampaignFactory(slug="nowhere")
    assert client.get("/c/nowhere/").status_code == 404


@pytest.mark.parametrize(
    "params, headers",
    [
        ({"clickid": "x" * 100_000}, {}),
        ({"clickid": "bad\x00id\r\n", "sub1": "\x00\x01", "zone": "é" * 1000}, {}),
        ({"clickid": "<script>alert(1)</script>", "connection": "quantum", "carrier": "x" * 500}, {}),
        ({"country": "\x00", "sub2": "'; DROP TABLE campaigns_click; --"}, {"HTTP_CF_IPCOUNTRY": "<>"}),
        ({}, {"HTTP_USER_AGENT": "Mozilla/5.0 " + "(" * 50_000, "REMOTE_ADDR": "not-an-ip"}),
        ({}, {"HTTP_REFERER": "http://" + "a" * 10_000, "HTTP_USER_AGENT": "\x00\x00"}),
    ],
)
def test_hostile_input_never_breaks_tracking(client, campaign, params, headers):
    response = client.get("/c/push-solar/", params, **headers)

    assert response.status_code == 302
    click = Click.objects.get()
    assert len(click.click_id) <= 128 and "\x00" not in click.click_id
    assert all(len(value) <= 255 and "\x00" not in value for value in click.sub_ids.values())
    assert len(click.user_agent) <= 1000 and len(click.referrer) <= 1000
    assert len(click.carrier) <= 64 and click.connection_type in ("", "cellular", "wifi", "broadband")


def test_too_many_parameters_is_a_client_error_not_a_crash(client, campaign):
    query = "&".join(f"p{number}=1" for number in range(1500))
    response = client.get(f"/c/push-solar/?{query}")
    assert response.status_code == 400


def test_post_is_not_allowed(client, campaign):
    assert client.post("/c/push-solar/").status_code == 405
    assert not Click.objects.exists()


def test_click_time_is_now(client, campaign):
    before = timezone.now()
    client.get("/c/push-solar/")
    assert before <= Click.objects.get().created_at <= timezone.now()


def test_a_click_is_one_insert_once_its_campaign_is_cached(client, campaign, django_assert_num_queries):
    client.get("/c/push-solar/", HTTP_USER_AGENT=IPHONE)  # this process now holds the campaign
    parses = parse_user_agent.cache_info()

    with django_assert_num_queries(1) as queries:
        response = client.get("/c/push-solar/", {"clickid": "src-2", "sub1": "z9"}, HTTP_USER_AGENT=IPHONE)

    assert response.status_code == 302
    assert queries.captured_queries[0]["sql"].startswith('INSERT INTO "campaigns_click"')
    # The same user agent is parsed once per process, not once per click.
    assert (parse_user_agent.cache_info().hits, parse_user_agent.cache_info().misses) == (
        parses.hits + 1,
        parses.misses,
    )
    assert Click.objects.filter(click_id="src-2", device_type="mobile").exists()

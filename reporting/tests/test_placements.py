import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory, ClickFactory, TrafficSourceFactory
from leads.tests.factories import LeadFactory
from reporting.selectors.placements import placement_blacklist, placement_quality

pytestmark = pytest.mark.django_db


def leads(campaign, zone, *, valid=0, invalid=0, won=0):
    """Leads of a campaign from one zone (None: no zone); `won` of the valid ones are sales of 150."""
    sub_ids = {} if zone is None else {"zone": zone, "creative": "cr1"}
    for number in range(valid):
        if number < won:
            LeadFactory(campaign=campaign, sub_ids=sub_ids, status="won", sale_amount=Decimal("150.00"))
        else:
            LeadFactory(campaign=campaign, sub_ids=sub_ids)
    for _ in range(invalid):
        LeadFactory(campaign=campaign, sub_ids=sub_ids, validity="invalid", qualification="unqualified")


@pytest.fixture
def source():
    """Two campaigns of one source with different thresholds, and a second source sharing zone ids."""
    source = TrafficSourceFactory(name="Push Network #1")
    strict = CampaignFactory(
        name="Strict",
        traffic_source=source,
        placement_min_leads=5,
        placement_min_validity_rate=Decimal("60"),
        placement_min_conversion_rate=Decimal("10"),
    )
    lenient = CampaignFactory(
        name="Lenient", traffic_source=source, placement_min_leads=3, placement_min_validity_rate=Decimal("50")
    )
    leads(strict, "101", valid=2, invalid=3, won=1)  # validity 40% < 60%: flagged
    leads(strict, "102", valid=5, won=1)  # validity 100%, conversion 20%: fine
    leads(strict, "103", invalid=4)  # all invalid, but 4 leads of 5 needed: not judged
    leads(strict, "104", valid=5)  # no sales: conversion 0% < 10%, flagged
    leads(strict, "105", valid=5, won=1)  # fine here ...
    leads(lenient, "105", valid=1, invalid=3)  # ... but 25% < 50% in the other campaign: flagged
    leads(lenient, "106\r\n", invalid=3)  # an id with a line break (a partner's submission): flagged
    leads(lenient, "102", valid=3)  # fine in both campaigns
    leads(strict, None, invalid=6)  # traffic without a zone: flagged but never blacklisted
    for _ in range(3):
        ClickFactory(campaign=strict, sub_ids={"zone": "101"})

    other = CampaignFactory(
        name="Elsewhere", placement_min_leads=1, placement_min_validity_rate=Decimal("90")
    )  # its own traffic source
    leads(other, "102", invalid=3)  # flagged there, fine here
    leads(other, "999", invalid=3)
    return source


def period():
    today = timezone.localdate()
    return {"date_from": today - datetime.timedelta(days=29), "date_to": today}


def query(source, **params):
    dates = period()
    return {
        "traffic_source": source.pk,
        "sub_id": "zone",
        "date_from": dates["date_from"].isoformat(),
        "date_to": dates["date_to"].isoformat(),
        **params,
    }


def by_placement(rows):
    return {(row["placement"], row["campaign_name"]): row for row in rows}


def test_placements_are_judged_per_campaign_against_its_thresholds(source):
    rows = by_placement(placement_quality(traffic_source=source, sub_id="zone", **period()))

    assert set(rows) == {
        ("101", "Strict"),
        ("102", "Lenient"),
        ("102", "Strict"),
        ("103", "Strict"),
        ("104", "Strict"),
        ("105", "Lenient"),
        ("105", "Strict"),
        ("106\r\n", "Lenient"),
        (None, "Strict"),
    }
    assert rows["101", "Strict"]["flags"] == ["validity 40% < 60%"]
    assert rows["101", "Strict"]["tracked_clicks"] == 3
    assert rows["101", "Strict"]["revenue"] == Decimal("150.00")
    assert rows["104", "Strict"]["flags"] == ["conversion 0% < 10%"]
    assert rows["105", "Lenient"]["flags"] == ["validity 25% < 50%"]
    assert rows[None, "Strict"]["flags"] == ["validity 0% < 60%", "conversion 0% < 10% (no valid leads)"]
    for fine in [("102", "Strict"), ("102", "Lenient"), ("105", "Strict")]:
        assert rows[fine]["judged"] and not rows[fine]["flagged"], fine
    too_few = rows["103", "Strict"]
    assert (too_few["judged"], too_few["flagged"], too_few["flags"]) == (False, False, [])


def test_blacklist_lists_ids_flagged_in_any_campaign_of_the_source_only(source):
    blacklist = placement_blacklist(traffic_source=source, sub_id="zone", **period())

    # 102 is flagged on the other source and 999 is only there; traffic without a zone has no id.
    assert blacklist == ["101", "104", "105", "106"]


def test_unknown_sub_id_is_refused_by_the_selector(source):
    with pytest.raises(ValueError, match="sub id"):
        placement_quality(traffic_source=source, sub_id="campaign", **period())


def test_marketing_downloads_the_blacklist_one_id_per_line(client, staff_user_in, source):
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("placement-blacklist"), query(source))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    dates = period()
    assert response["Content-Disposition"] == (
        f'attachment; filename="blacklist-push-network-1-zone-{dates["date_from"]}-{dates["date_to"]}.txt"'
    )
    assert response.content == b"101\n104\n105\n106\n"


def test_blacklist_of_another_placement_kind_and_of_a_quiet_period(client, staff_user_in, source):
    client.force_login(staff_user_in("Marketing"))

    by_creative = client.get(reverse("placement-blacklist"), query(source, sub_id="creative"))
    long_ago = client.get(reverse("placement-blacklist"), query(source, date_from="2020-01-01", date_to="2020-01-31"))

    assert by_creative.content == b"cr1\n"  # 40% valid in Lenient as a whole, fine in Strict
    assert long_ago.status_code == 200
    assert long_ago.content == b""


def test_page_shows_each_placement_with_its_status_and_the_download_link(
    client, staff_user_in, source, django_assert_max_num_queries
):
    client.force_login(staff_user_in("Marketing"))

    with django_assert_max_num_queries(10):
        response = client.get(reverse("placement-quality"), query(source))

    assert response.status_code == 200
    rows = by_placement(response.context["rows"])
    assert rows["101", "Strict"]["status"] == "Flagged: validity 40% < 60%"
    assert rows["104", "Strict"]["status"] == "Flagged: conversion 0% < 10%"
    assert rows["103", "Strict"]["status"] == "Not enough leads (4/5)"
    assert rows["102", "Strict"]["status"] == "Judged"
    assert rows[None, "Strict"]["status"] == (
        "Flagged: validity 0% < 60%; conversion 0% < 10% (no valid leads) (no id to blacklist)"
    )
    assert rows["102", "Strict"]["validity_percent"] == "100%"
    assert rows["102", "Strict"]["conversion_percent"] == "20%"
    html = response.content.decode()
    assert "Flagged: validity 40% &lt; 60%" in html
    assert "Not enough leads (4/5)" in html
    assert html.count('<tr class="flagged">') == 5  # 101, 104, 105 (Lenient), 106 and the zoneless traffic
    assert "<em>(none)</em>" in html
    assert "<title> Traffic quality by placement | leadcrm</title>" in html
    download = response.context["download_url"]
    assert download.startswith(reverse("placement-blacklist") + "?")
    assert client.get(download).content == b"101\n104\n105\n106\n"


def _get_counting_queries(client, params):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("placement-quality"), params)
    assert response.status_code == 200
    return response, len(queries)


def test_the_page_costs_the_same_queries_with_nine_placement_rows_or_thirty_nine(client, staff_user_in, source):
    client.force_login(staff_user_in("Marketing"))

    nine, nine_queries = _get_counting_queries(client, query(source))
    campaign = CampaignFactory(
        name="Wide", traffic_source=source, placement_min_leads=1, placement_min_validity_rate=Decimal("50")
    )
    for zone in range(200, 230):
        leads(campaign, str(zone), valid=1, invalid=2)
        ClickFactory(campaign=campaign, sub_ids={"zone": str(zone)})
    thirty_nine, thirty_nine_queries = _get_counting_queries(client, query(source))

    # The small page's ceiling, for both: the report's queries, the campaigns' thresholds, the form's list.
    assert nine_queries == thirty_nine_queries <= 10
    assert len(nine.context["rows"]) == 9 and len(thirty_nine.context["rows"]) == 39
    summary = " ".join(thirty_nine.content.decode().split())
    assert "39 placement rows, 35 flagged; 34 ids in the blacklist." in summary
    assert "9 placement rows, 5 flagged; 4 ids in the blacklist." in " ".join(nine.content.decode().split())
    for zone in range(200, 230):  # each new zone in its own flagged row, with its figures and why
        assert (
            f'<tr class="flagged"> <td><code>{zone}</code></td> <td><a href="'
            f'{reverse("admin:campaigns_campaign_change", args=[campaign.pk])}">Wide</a></td> '
            '<td class="num">3</td> <td class="num">1</td> <td class="num">33.33%</td>'
        ) in summary
    assert summary.count("<strong>Flagged: validity 33.33% &lt; 50%</strong>") == 30


def test_a_campaign_without_thresholds_judges_but_never_flags(client, staff_user_in):
    campaign = CampaignFactory(placement_min_leads=1)
    leads(campaign, "301", invalid=5)
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("placement-quality"), query(campaign.traffic_source))
    download = client.get(reverse("placement-blacklist"), query(campaign.traffic_source))

    [row] = response.context["rows"]
    assert (row["placement"], row["flagged"], row["status"]) == (
        "301",
        False,
        "Judged: the campaign sets no thresholds",
    )
    assert download.content == b""


def test_first_visit_shows_the_form_with_defaults_and_no_table(client, staff_user_in, source):
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("placement-quality"))

    assert response.status_code == 200
    assert response.context["rows"] is None
    form = response.context["form"]
    assert form.initial["sub_id"] == "zone"
    assert form.initial["date_to"] == timezone.localdate().isoformat()


def test_sales_may_not_see_placements_or_download_blacklists(client, staff_user_in, source):
    client.force_login(staff_user_in("Sales"))

    assert client.get(reverse("placement-quality"), query(source)).status_code == 403
    assert client.get(reverse("placement-blacklist"), query(source)).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client, source):
    response = client.get(reverse("placement-blacklist"), query(source))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"sub_id": "campaign"}, "sub_id"),
        ({"date_from": "2026-02-30"}, "date_from"),
        ({"date_to": "9999-12-31"}, "date_to"),
        ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_to"),
        ({"traffic_source": "0"}, "traffic_source"),
    ],
)
def test_bad_input_is_a_form_error_on_the_page_and_a_400_for_the_download(client, staff_user_in, source, params, field):
    client.force_login(staff_user_in("Marketing"))

    page = client.get(reverse("placement-quality"), query(source, **params))
    download = client.get(reverse("placement-blacklist"), query(source, **params))

    assert page.status_code == 200
    assert list(page.context["form"].errors) == [field]
    assert page.context["rows"] is None
    assert download.status_code == 400
    assert download["Content-Type"] == "text/plain; charset=utf-8"
    assert download.content.startswith(f"No blacklist: {field}: ".encode())


def test_download_without_a_traffic_source_is_a_400(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("placement-blacklist"))

    assert response.status_code == 400
    assert response.content == b"No blacklist: traffic_source: This field is required.\n"


def test_campaign_admin_shows_the_placement_thresholds(client, staff_user_in):
    campaign = CampaignFactory(placement_min_validity_rate=Decimal("62.5"))
    client.force_login(staff_user_in("Marketing"))

    response = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Placement quality" in html
    assert 'name="placement_min_leads" value="20"' in html
    assert 'name="placement_min_validity_rate" value="62.50"' in html
    assert 'name="placement_min_conversion_rate"' in html


@pytest.mark.parametrize(
    "field, value",
    [
        ("placement_min_validity_rate", Decimal("100.01")),
        ("placement_min_conversion_rate", Decimal("-1")),
        ("placement_min_leads", 0),
    ],
)
def test_placement_thresholds_are_percentages_and_at_least_one_lead(field, value):
    campaign = CampaignFactory()
    setattr(campaign, field, value)

    with pytest.raises(ValidationError) as error:
        campaign.full_clean()

    assert list(error.value.message_dict) == [field]

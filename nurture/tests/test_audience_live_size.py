""" "Show size" on the audience form: a segment's size now, as filled in, before anything is saved."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leads.tests.factories import LeadFactory
from nurture.models import Audience, Suppression
from nurture.services.audiences import audience_leads

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client, staff_user_in):
    client.force_login(staff_user_in("Marketing", email="marketer@example.com"))
    return client


@pytest.fixture
def roofing(db):
    return CampaignFactory(slug="roofing-us", offer__name="Roof quote")


@pytest.fixture
def leads(campaign, roofing):
    """Leads in and out of "US, captured within 30 days", and the addresses suppressed."""
    recent = {"country": "US", "consent": True}
    made = [
        *LeadFactory.create_batch(3, campaign=campaign, **recent),
        *LeadFactory.create_batch(2, campaign=roofing, **recent),
        LeadFactory(campaign=campaign, **recent, created_at=timezone.now() - timedelta(days=40)),
        LeadFactory(campaign=campaign, country="DE", consent=True),
        *LeadFactory.create_batch(2, campaign=roofing, country="DE", consent=True),
        LeadFactory(campaign=campaign, country="US", consent=False),
        LeadFactory(campaign=campaign, **recent, is_test=True),
        LeadFactory(campaign=campaign, country="US", consent=False, is_test=True),  # two reasons
        LeadFactory(campaign=campaign, **recent, is_duplicate=True),
        LeadFactory(campaign=campaign, **recent, validity="invalid"),
    ]
    suppressed = LeadFactory(campaign=campaign, **recent)
    Suppression.objects.create(email=suppressed.email, reason=Suppression.Reason.UNSUBSCRIBED)
    return [*made, suppressed], {suppressed.email}


def expected_size(leads, *, country: str, within_days: int, campaigns=None) -> int:
    """The segment's size worked out here from the leads made, not with the code under test."""
    made, suppressed = leads
    since = timezone.now() - timedelta(days=within_days)
    return sum(
        1
        for lead in made
        if lead.country == country
        and lead.created_at >= since
        and (campaigns is None or lead.campaign_id in campaigns)
        and lead.consent
        and not lead.is_test
        and not lead.is_duplicate
        and lead.validity != "invalid"
        and lead.email not in suppressed
    )


def form_data(*, exports: int = 0, **fields) -> dict:
    """The audience form as a browser posts it (unticked checkboxes and empty M2M are absent)."""
    return {
        "name": "US, last 30 days",
        "kind": Audience.Kind.SEGMENT,
        "countries": "US",
        "captured_within_days": "30",
        "min_score": "",
        "max_score": "",
        "exports-TOTAL_FORMS": str(exports),
        "exports-INITIAL_FORMS": str(exports),
        "exports-MIN_NUM_FORMS": "0",
        "exports-MAX_NUM_FORMS": "1000",
        **fields,
    }


ADD_SIZE = reverse("admin:nurture_audience_size_new")


def size_url(audience) -> str:
    return reverse("admin:nurture_audience_size", args=[audience.pk])


def test_show_size_on_the_add_form_counts_the_segment_without_saving_it(marketer, leads):
    add_page = marketer.get(reverse("admin:nurture_audience_add")).content.decode()

    response = marketer.post(ADD_SIZE, form_data())

    assert f'id="show-size" data-size-url="{ADD_SIZE}"' in add_page and 'id="size-preview"' in add_page
    assert response.status_code == 200
    size = response.json()
    assert size["leads"] == expected_size(leads, country="US", within_days=30) == 5
    # 11 match: 5 in it; left out: 1 suppressed, 2 without consent, 2 test, 1 duplicate, 1 invalid
    assert (size["matching"], size["left_out"]) == (11, 6)
    assert [size[reason] for reason in ("suppressed", "no_consent", "test", "duplicate", "invalid")] == [1, 2, 2, 1, 1]
    assert size["text"].startswith("This segment holds 5 leads now, with the conditions as entered")
    assert (
        "11 match the conditions; 6 of them are never in an audience: 1 suppressed, 2 without marketing consent, "
        "2 test, 1 duplicate, 1 invalid"
    ) in size["text"]
    assert Audience.objects.count() == 0


def test_show_size_counts_the_offers_and_campaigns_chosen_on_the_form(marketer, leads, roofing):
    data = form_data(campaigns=[roofing.pk], offers=[roofing.offer_id])

    response = marketer.post(ADD_SIZE, data)

    assert response.json()["leads"] == expected_size(leads, country="US", within_days=30, campaigns={roofing.pk}) == 2
    assert Audience.objects.count() == 0


def test_show_size_on_a_changed_audience_shows_the_new_size_and_leaves_the_stored_one_alone(
    marketer, leads, campaign, roofing
):
    audience = Audience.objects.create(name="US recent", countries=["US"], captured_within_days=30)
    audience.campaigns.set([campaign])
    changed = form_data(name="DE roofing", countries="DE", campaigns=[roofing.pk])

    response = marketer.post(size_url(audience), changed)

    assert response.json()["leads"] == expected_size(leads, country="DE", within_days=30, campaigns={roofing.pk}) == 2
    assert "This segment holds 2 leads now" in response.json()["text"]
    stored = Audience.objects.get()
    assert (stored.name, stored.countries, stored.captured_within_days) == ("US recent", ["US"], 30)
    assert list(stored.campaigns.all()) == [campaign]
    page = marketer.get(reverse("admin:nurture_audience_change", args=[audience.pk])).content.decode()
    stored_size = expected_size(leads, country="US", within_days=30, campaigns={campaign.pk})
    assert re.search(rf'<div class="readonly[^"]*">{stored_size}</div>', page) and stored_size == 3


def test_show_size_with_invalid_input_shows_the_errors_and_saves_nothing(marketer, leads):
    audience = Audience.objects.create(name="Taken")
    invalid = form_data(name="Taken", captured_within_days="-3")

    response = marketer.post(ADD_SIZE, invalid)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "captured_within_days"}
    assert response.json()["text"] == "Please correct the errors below, then show the size."
    assert "leads" not in response.json()
    assert list(Audience.objects.all()) == [audience]


def test_show_size_is_for_segments_only(marketer, leads):
    static = Audience.objects.create(name="Engaged", kind=Audience.Kind.STATIC)

    change_page = marketer.get(reverse("admin:nurture_audience_change", args=[static.pk]))
    add_page = marketer.get(reverse("admin:nurture_audience_add"))
    previewed = marketer.post(ADD_SIZE, form_data(name="Another list", kind=Audience.Kind.STATIC))

    assert 'id="show-size"' not in change_page.content.decode()
    assert 'id="show-size"' in add_page.content.decode()  # the form starts as a segment
    assert previewed.json() == {
        "text": "Show size applies to segments only: a static list holds the leads flows add to it."
    }
    assert list(Audience.objects.all()) == [static]


def test_save_still_saves_the_segment_and_it_holds_the_leads_show_size_counted(marketer, leads, roofing):
    previewed = marketer.post(ADD_SIZE, form_data(campaigns=[roofing.pk]))

    response = marketer.post(reverse("admin:nurture_audience_add"), form_data(campaigns=[roofing.pk], _save="Save"))

    assert response.status_code == 302
    audience = Audience.objects.get()
    assert (audience.name, audience.countries, audience.captured_within_days) == ("US, last 30 days", ["US"], 30)
    assert list(audience.campaigns.all()) == [roofing]
    assert audience_leads(audience).count() == previewed.json()["leads"] == 2


def test_show_size_runs_in_a_fixed_number_of_queries(marketer, leads, campaign, roofing, django_assert_max_num_queries):
    few = form_data()
    many = form_data(
        campaigns=[campaign.pk, roofing.pk, *(CampaignFactory().pk for _ in range(3))],
        offers=[campaign.offer_id, roofing.offer_id],
        statuses=["new", "contacted"],
        engaged_not_converted="on",
    )

    with django_assert_max_num_queries(8):
        marketer.post(ADD_SIZE, few)
    LeadFactory.create_batch(20, campaign=roofing, consent=True)
    with django_assert_max_num_queries(8):
        response = marketer.post(ADD_SIZE, many)

    assert response.json()["leads"] == 0  # nobody engaged with a nurture email


def test_show_size_needs_the_right_to_add_or_change_audiences(client, staff_user_in, leads):
    # Managers may look at audiences but not edit them.
    client.force_login(staff_user_in("Managers"))
    audience = Audience.objects.create(name="Saved", countries=["US"])

    on_add = client.post(ADD_SIZE, form_data())
    on_change = client.post(size_url(audience), form_data())

    assert (on_add.status_code, on_change.status_code) == (403, 403)
    assert list(Audience.objects.values_list("name", flat=True)) == ["Saved"]

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


def preview_text(response) -> str:
    """The words of the "Show size" box on the page."""
    box = re.search(r'id="size-preview">(.*?)</ul>', response.content.decode(), re.DOTALL).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", box).split())


def test_show_size_on_the_add_form_counts_the_segment_without_saving_it(marketer, leads):
    url = reverse("admin:nurture_audience_add")

    response = marketer.post(url, form_data(_preview_size="Show size"))

    assert response.status_code == 200
    size = response.context["size_preview"]
    assert size.leads == expected_size(leads, country="US", within_days=30) == 5
    # 11 match: 5 in it; left out: 1 suppressed, 2 without consent, 2 test, 1 duplicate, 1 invalid
    assert (size.matching, size.left_out) == (11, 6)
    assert (size.suppressed, size.no_consent, size.test, size.duplicate, size.invalid) == (1, 2, 2, 1, 1)
    assert preview_text(response).startswith("This segment holds 5 leads now, with the conditions as entered")
    assert (
        "11 match the conditions; 6 of them are never in an audience: 1 suppressed, 2 without marketing consent, "
        "2 test, 1 duplicate, 1 invalid"
    ) in preview_text(response)
    assert Audience.objects.count() == 0
    form = response.context["adminform"].form
    assert form["name"].value() == "US, last 30 days" and form["captured_within_days"].value() == "30"
    assert form.cleaned_data["countries"] == ["US"]
    assert 'value="US, last 30 days"' in response.content.decode()
    assert 'name="_preview_size"' in response.content.decode()


def test_show_size_counts_the_offers_and_campaigns_chosen_on_the_form(marketer, leads, roofing):
    data = form_data(campaigns=[roofing.pk], offers=[roofing.offer_id], _preview_size="Show size")

    response = marketer.post(reverse("admin:nurture_audience_add"), data)

    size = response.context["size_preview"]
    assert size.leads == expected_size(leads, country="US", within_days=30, campaigns={roofing.pk}) == 2
    assert list(response.context["adminform"].form.cleaned_data["campaigns"]) == [roofing]
    assert Audience.objects.count() == 0


def test_show_size_on_a_changed_audience_shows_the_new_size_and_leaves_the_stored_one_alone(
    marketer, leads, campaign, roofing
):
    audience = Audience.objects.create(name="US recent", countries=["US"], captured_within_days=30)
    audience.campaigns.set([campaign])
    url = reverse("admin:nurture_audience_change", args=[audience.pk])
    changed = form_data(name="DE roofing", countries="DE", campaigns=[roofing.pk], _preview_size="Show size")

    response = marketer.post(url, changed)

    size = response.context["size_preview"]
    assert size.leads == expected_size(leads, country="DE", within_days=30, campaigns={roofing.pk}) == 2
    assert "This segment holds 2 leads now" in preview_text(response)
    form = response.context["adminform"].form
    assert form["name"].value() == "DE roofing" and form["countries"].value() == "DE"
    stored = Audience.objects.get()
    assert (stored.name, stored.countries, stored.captured_within_days) == ("US recent", ["US"], 30)
    assert list(stored.campaigns.all()) == [campaign]
    # "Leads in it now" (saved conditions) gives way to the box on the preview; the page shows it again
    assert "Leads in it now" not in response.content.decode()
    page = marketer.get(url)
    stored_size = expected_size(leads, country="US", within_days=30, campaigns={campaign.pk})
    assert f'<div class="readonly">{stored_size}</div>' in page.content.decode() and stored_size == 3


def test_show_size_with_invalid_input_shows_the_errors_and_saves_nothing(marketer, leads):
    audience = Audience.objects.create(name="Taken")
    invalid = form_data(name="Taken", captured_within_days="-3", _preview_size="Show size")

    response = marketer.post(reverse("admin:nurture_audience_add"), invalid)

    form = response.context["adminform"].form
    assert set(form.errors) == {"name", "captured_within_days"}
    assert response.context["size_preview"] is None and "size-preview" not in response.content.decode()
    assert "Please correct the errors below" in response.content.decode()
    assert list(Audience.objects.all()) == [audience]


def test_show_size_is_for_segments_only(marketer, leads):
    static = Audience.objects.create(name="Engaged", kind=Audience.Kind.STATIC)

    change_page = marketer.get(reverse("admin:nurture_audience_change", args=[static.pk]))
    add_page = marketer.get(reverse("admin:nurture_audience_add"))
    previewed = marketer.post(
        reverse("admin:nurture_audience_add"),
        form_data(name="Another list", kind=Audience.Kind.STATIC, _preview_size="Show size"),
    )

    assert 'name="_preview_size"' not in change_page.content.decode()
    assert 'name="_preview_size"' in add_page.content.decode()  # the form starts as a segment
    assert previewed.context["size_preview"] is None
    assert "applies to segments only" in previewed.content.decode()
    assert list(Audience.objects.all()) == [static]


def test_save_still_saves_the_segment_and_it_holds_the_leads_show_size_counted(marketer, leads, roofing):
    url = reverse("admin:nurture_audience_add")
    previewed = marketer.post(url, form_data(campaigns=[roofing.pk], _preview_size="Show size"))

    response = marketer.post(url, form_data(campaigns=[roofing.pk], _save="Save"))

    assert response.status_code == 302
    audience = Audience.objects.get()
    assert (audience.name, audience.countries, audience.captured_within_days) == ("US, last 30 days", ["US"], 30)
    assert list(audience.campaigns.all()) == [roofing]
    assert audience_leads(audience).count() == previewed.context["size_preview"].leads == 2


def test_show_size_runs_in_a_fixed_number_of_queries(marketer, leads, campaign, roofing, django_assert_max_num_queries):
    few = form_data(_preview_size="Show size")
    many = form_data(
        campaigns=[campaign.pk, roofing.pk, *(CampaignFactory().pk for _ in range(3))],
        offers=[campaign.offer_id, roofing.offer_id],
        statuses=["new", "contacted"],
        engaged_not_converted="on",
        _preview_size="Show size",
    )
    url = reverse("admin:nurture_audience_add")

    with django_assert_max_num_queries(12):
        marketer.post(url, few)
    LeadFactory.create_batch(20, campaign=roofing, consent=True)
    with django_assert_max_num_queries(12):
        response = marketer.post(url, many)

    assert response.context["size_preview"].leads == 0  # nobody engaged with a nurture email


def test_show_size_needs_the_right_to_add_or_change_audiences(client, staff_user_in, leads):
    # Managers may look at audiences but not edit them.
    client.force_login(staff_user_in("Managers"))
    audience = Audience.objects.create(name="Saved", countries=["US"])

    on_add = client.post(reverse("admin:nurture_audience_add"), form_data(_preview_size="Show size"))
    on_change = client.post(
        reverse("admin:nurture_audience_change", args=[audience.pk]), form_data(_preview_size="Show size")
    )

    assert (on_add.status_code, on_change.status_code) == (403, 403)
    assert "size_preview" not in (on_change.context or {})
    assert list(Audience.objects.values_list("name", flat=True)) == ["Saved"]

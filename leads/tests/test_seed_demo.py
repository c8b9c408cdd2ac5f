from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Campaign, Click, DailyStat, LandingPage, Offer, TrafficSource
from leadcrm.tests.demo import seeded_demo
from leads.models import Lead

# One worker takes the module: the class's tests share one seed.
pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("seed_demo")]


def counts():
    return (
        Campaign.objects.count(),
        DailyStat.objects.count(),
        Click.objects.count(),
        LandingPage.objects.count(),
        TrafficSource.objects.count(),
    )


def test_seed_demo_refuses_to_run_without_debug():
    with pytest.raises(CommandError, match="runs only with DEBUG=true"):
        call_command("seed_demo")
    assert not Campaign.objects.exists()


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """The demo, seeded once for the class's tests (each one's changes rolled back); what it printed."""
    with seeded_demo(django_db_blocker) as output:
        yield output


class TestTheDemo:
    def test_seed_demo_builds_every_source_kind_and_running_it_twice_duplicates_nothing(self, demo, client):
        first, output = counts(), demo

        call_command("seed_demo", force=True, stdout=StringIO())

        assert counts() == first
        kinds = set(Campaign.objects.values_list("traffic_source__kind", flat=True))
        assert kinds == set(TrafficSource.Kind.values)
        for campaign in Campaign.objects.all():
            assert campaign.daily_stats.count() == 30
            assert campaign.clicks.exists()
        assert LandingPage.objects.filter(kind="quiz", questions__isnull=False).exists()
        # Every offer's qualification rules can be met by what its pages ask: each has qualified leads.
        for offer in Offer.objects.filter(qualification_rules__isnull=False).distinct():
            assert Lead.objects.filter(offer=offer, validity="valid", qualification="qualified").exists(), offer.name
        assert LandingPage.objects.filter(kind="prelander").exists()
        assert "Admin: http://127.0.0.1:8000/admin/" in output
        for username, group in (
            ("admin", "superuser"),
            ("marketer", "Marketing"),
            ("sales", "Sales"),
            ("manager", "Managers"),
        ):
            assert f"login {username}" in output and f"({group})" in output

        # The printed login works on the login page and the admin lists the campaigns (their figures:
        # reporting's demo test).
        login = client.post("/admin/login/", {"username": "marketer", "password": "leadcrm-demo", "next": "/admin/"})
        assert login.status_code == 302 and login["Location"] == "/admin/"
        page = client.get("/admin/campaigns/campaign/")
        assert page.status_code == 200
        assert len(page.context["cl"].result_list) == first[0]

    def test_the_demo_reps_leads_are_told_apart_by_their_scores(self, demo):
        assigned = list(Lead.objects.filter(assigned_to__isnull=False).values_list("score", flat=True))
        bands = {min(score // 10, 9) for score in assigned}

        assert len(assigned) >= 20
        assert len(bands) >= 5, sorted(assigned)
        # No score is worn by half the list, as 97 once was.
        assert max(assigned.count(score) for score in set(assigned)) < len(assigned) / 4

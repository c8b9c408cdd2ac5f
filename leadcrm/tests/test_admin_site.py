"""The admin as each role meets it: its sidebar, and the search box that finds leads and campaigns."""

import re

import pytest
from django.urls import reverse

from campaigns.tests.factories import CampaignFactory
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def sidebar(client) -> dict[str, list[str]]:
    """The sidebar's groups and links as the page shows them."""
    html = client.get(reverse("admin:index")).content.decode()
    nav = html[html.index('id="nav-sidebar"') : html.index('id="main"')]
    groups: dict[str, list[str]] = {}
    current = ""
    for heading, link in re.findall(r"<h2[^>]*>\s*([^<]+?)\s*</h2>|<a[^>]+href=\"(/admin/[^\"]*)\"", nav):
        if heading:
            current = heading.strip()
            groups.setdefault(current, [])
        elif link and not link.startswith(("/admin/password_change/", "/admin/logout/", "/admin/two-factor/")):
            groups.setdefault(current, []).append(link)
    return groups


def test_each_role_gets_the_sidebar_of_its_work(client, staff_user_in):
    client.force_login(staff_user_in("Sales"))
    rep = sidebar(client)
    client.force_login(staff_user_in("Marketing"))
    marketing = sidebar(client)
    client.force_login(staff_user_in("Managers"))
    manager = sidebar(client)

    leads = reverse("admin:leads_lead_changelist")
    assert rep["Sales"] == [
        f"{leads}?assigned=me&amp;open=yes",
        f"{leads}?assigned=none",
        f"{leads}?assigned=me&amp;follow_up=due",
    ]
    assert not {"Campaigns", "Reports", "Nurture", "Partners and money", "Team"} & set(rep)
    assert {"Campaigns", "Reports", "Leads", "Nurture"} <= set(marketing) and "Sales" not in marketing
    assert reverse("campaign-report") in marketing["Reports"]
    assert reverse("admin:nurture_flow_changelist") in marketing["Nurture"]
    assert "Team" not in marketing and "Partners and money" in marketing  # read-only views of deliveries
    assert {"Sales", "Campaigns", "Reports", "Leads", "Nurture", "Partners and money", "Team"} <= set(manager)
    assert reverse("admin:auth_user_changelist") in manager["Team"]


def test_only_the_page_shown_is_lit_in_the_sidebar(client, staff_user_in):
    client.force_login(staff_user_in("Managers"))

    html = client.get(reverse("admin:leads_lead_changelist"), {"assigned": "me", "open": "yes"}).content.decode()

    lit = re.findall(r'<a[^>]+href="([^"]+)"[^>]*class="[^"]*\bactive\b', html) or re.findall(
        r'class="[^"]*\bactive\b[^"]*"[^>]*href="([^"]+)"', html
    )
    assert lit == [reverse("admin:leads_lead_changelist") + "?assigned=me&amp;open=yes"]


def test_a_page_under_another_links_path_lights_only_its_own_link(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))

    html = client.get(reverse("placement-quality")).content.decode()

    lit = re.findall(r'<a[^>]+href="([^"]+)"[^>]*class="[^"]*\bactive\b', html) or re.findall(
        r'class="[^"]*\bactive\b[^"]*"[^>]*href="([^"]+)"', html
    )
    assert lit == [reverse("placement-quality")]


def search(client, term: str) -> str:
    return client.get(reverse("admin:search"), {"s": term, "extended": "1"}).content.decode()


def test_the_search_box_finds_leads_by_email_phone_or_click_id_and_campaigns_by_name(client, staff_user_in):
    solar = CampaignFactory(name="Solar push US")
    lead = LeadFactory(
        campaign=solar, first_name="Ines", last_name="Ortega", email="ines@example.com", phone="+16505550199"
    )
    LeadFactory(campaign=solar, first_name="Other", email="other@example.com", click_id="clk-777")
    client.force_login(staff_user_in("Managers"))

    lead_url = reverse("admin:leads_lead_change", args=[lead.pk])
    assert lead_url in search(client, "INES@example.com")
    assert lead_url in search(client, "+1 650 555 0199")
    assert "Other" in search(client, "clk-777") and lead_url not in search(client, "clk-777")
    found = search(client, "solar push")
    assert reverse("admin:campaigns_campaign_change", args=[solar.pk]) in found and lead_url not in found


def test_a_rep_finds_only_leads_they_may_see(client, staff_user_in):
    rep, other = staff_user_in("Sales"), staff_user_in("Sales")
    theirs = LeadFactory(email="theirs@example.com", assigned_to=other)
    mine = LeadFactory(email="mine@example.com", assigned_to=rep)
    client.force_login(rep)

    assert reverse("admin:leads_lead_change", args=[mine.pk]) in search(client, "mine@example.com")
    assert reverse("admin:leads_lead_change", args=[theirs.pk]) not in search(client, "theirs@example.com")


def test_no_admin_page_names_another_host(client, staff_user_in):
    client.force_login(staff_user_in(None))
    campaign = CampaignFactory()
    pages = [
        reverse("admin:index"),
        reverse("admin:leads_lead_changelist"),
        reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
        reverse("admin:nurture_flow_add"),
        reverse("campaign-report"),
        reverse("admin:login"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        # Script, style, image and font addresses are all our own (the tracking link names SITE_URL).
        assets = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
        assert [asset for asset in assets if "127.0.0.1:8000" not in asset] == [], url
        assert "fonts.googleapis" not in html and "cdn." not in html


def test_an_empty_list_says_what_to_do_next_and_a_filtered_one_how_to_see_more(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))

    empty = client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    CampaignFactory(name="Solar push", status="active")
    filtered = client.get(reverse("admin:campaigns_campaign_changelist"), {"status__exact": "paused"}).content.decode()

    assert "No campaigns yet" in empty and "pick its traffic source and offer" in empty
    assert reverse("admin:campaigns_campaign_add") in empty
    assert "Nothing matches" in filtered and "Clear the filters" in filtered


def test_there_is_no_view_site_link_to_a_page_that_does_not_exist(client, staff_user_in):
    client.force_login(staff_user_in("Managers"))

    html = client.get(reverse("admin:index")).content.decode()

    assert "View site" not in html


def test_every_admin_page_is_an_unfold_model_admin():
    from django.apps import apps
    from django.contrib import admin
    from unfold.admin import ModelAdmin

    stock = [
        model._meta.label
        for model in apps.get_models(include_auto_created=True)
        if admin.site.is_registered(model) and not isinstance(admin.site.get_model_admin(model), ModelAdmin)
    ]
    assert stock == []


def test_browsers_asking_for_favicon_ico_get_the_site_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301 and response["Location"].endswith("leadcrm/favicon.svg")

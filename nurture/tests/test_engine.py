"""The engine end to end: a captured lead's flow over a real SMTP server, exits, quiet hours and the
frequency cap, branches and actions, paused and edited flows. Time moves by passing `now=` to the tick."""

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.utils import timezone

from leads.models import Lead, LeadEvent, OutboxEntry
from leads.services import lead_set_status, outbox_process
from leads.services.normalisation import normalise_phone
from leads.tests.factories import LeadFactory
from nurture import follow_ups
from nurture.models import Enrollment, Flow, FlowStep, NurtureMessage
from nurture.services.engine import nurture_tick
from nurture.services.enrollment import lead_enroll
from nurture.services.timing import MOST_POPULOUS_ZONE, lead_zone, zones_by_country

from .conftest import email_step, link_path, open_pixel, parts, tracked_links, unsubscribe_link, wait_step

pytestmark = pytest.mark.django_db
NEW_YORK = ZoneInfo("America/New_York")


def subjects(outbox=None) -> list[str]:
    return [m.subject for m in (mail.outbox if outbox is None else outbox)]


# --- 1. a flow over real SMTP ------------------------------------------------------------------
def test_a_captured_lead_gets_the_flow_over_smtp_on_schedule(smtp, capture, make_flow, tick, start):
    flow = make_flow(email_step(1), wait_step(days=2), email_step(2))

    lead = capture(email=" Ann.Smith@Example.com", first_name="ann", phone="+1 650 555 1212")

    # Enrolled by the capture's nurture_enrollment follow-up, through the outbox.
    assert lead.outbox_entries.get(kind=follow_ups.ENROLLMENT).status == OutboxEntry.Status.DONE
    enrollment = lead.enrollments.get()
    assert (enrollment.flow, enrollment.status) == (flow, Enrollment.Status.ACTIVE)
    assert smtp.envelopes == []  # nothing is sent before the tick

    assert tick(start) == 1

    assert len(smtp.envelopes) == 1
    assert smtp.envelopes[0].rcpt_tos == ["ann.smith@example.com"]
    received = smtp.messages[0]
    assert received["Subject"] == "Email 1 for Ann"
    assert received["To"] == "ann.smith@example.com"
    assert received.get_content_type() == "multipart/alternative"
    text, body = parts(received)
    assert "Hello Ann, this is email 1." in text
    assert "<p>Hello Ann, this is email 1.</p>" in body
    unsubscribe = unsubscribe_link(received)
    assert unsubscribe.startswith("http://testserver/n/u/")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe: {unsubscribe}" in text
    assert len(tracked_links(body)) == 1 and "https://example.com/solar/1" not in body  # the link is tracked
    assert "/n/o/" in open_pixel(body)

    message = NurtureMessage.objects.get()
    assert message.status == NurtureMessage.Status.SENT and message.attempts == 1 and message.sent_at
    assert message.provider_id and message.provider_id == received["Message-ID"]
    assert lead.events.filter(kind=LeadEvent.Kind.NURTURE, data__message=str(message.public_id)).exists()

    assert tick(start + timedelta(days=1)) == 0  # still waiting
    assert len(smtp.envelopes) == 1

    tick(start + timedelta(days=2, minutes=1))

    assert len(smtp.envelopes) == 2
    assert smtp.messages[1]["Subject"] == "Email 2 for Ann"
    assert smtp.messages[1]["Message-ID"] != received["Message-ID"]
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.step) == (Enrollment.Status.COMPLETED, None)
    assert NurtureMessage.objects.filter(status="sent").count() == 2


def test_the_html_part_is_personalised_with_the_campaign_and_offer_and_escaped(make_flow, tick, start, mailoutbox):
    flow = make_flow(
        email_step(1, body_html="<p>{{ lead.first_name }} from {{ campaign.slug }}: {{ offer.name }}</p>"),
    )
    lead = LeadFactory(
        consent=True, first_name="<b>Ben</b>", campaign__slug="solar-us", campaign__offer__name="Solar quote"
    )
    lead_enroll(flow=flow, lead=lead)

    tick(start)

    sent = mailoutbox[0]
    assert "&lt;b&gt;Ben&lt;/b&gt; from solar-us: Solar quote" in sent.alternatives[0][0]  # escaped in HTML
    assert "Hello <b>Ben</b>, this is email 1." in sent.body  # the plain text is not HTML-escaped


def test_the_subject_is_plain_text_not_html_escaped(make_flow, tick, start, mailoutbox):
    flow = make_flow(email_step(1, subject="{{ offer.name }} for {{ lead.first_name }}"))
    lead = LeadFactory(consent=True, first_name="D'Arcy", campaign__offer__name="Solar & Storage")
    lead_enroll(flow=flow, lead=lead)

    tick(start)

    assert mailoutbox[0].subject == "Solar & Storage for D'Arcy"


# --- 4. exits on the sales outcome --------------------------------------------------------------
STATUS_EXITS = [
    ("won", {"sale_amount": Decimal("499.00")}, "converted"),
    ("lost", {"reason": "bought elsewhere"}, "lost"),
    ("returned", {"reason": "wrong number"}, "returned"),
]


@pytest.mark.parametrize("status, extra, reason", STATUS_EXITS)
def test_a_sales_outcome_exits_the_lead_before_the_next_send(
    status, extra, reason, capture, make_flow, tick, start, mailoutbox, django_capture_on_commit_callbacks
):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="carl@example.com", first_name="Carl")
    tick(start)
    assert subjects() == ["Email 1 for Carl"]

    with django_capture_on_commit_callbacks(execute=True):
        lead_set_status(lead=lead, status=status, actor=None, **extra)

    enrollment = lead.enrollments.get()  # out at once, not at its next step
    assert (enrollment.status, enrollment.exit_reason) == (Enrollment.Status.EXITED, reason)
    assert enrollment.left_at is not None
    assert lead.events.filter(kind=LeadEvent.Kind.NURTURE, data__reason=reason).exists()

    tick(start + timedelta(days=3))

    assert subjects() == ["Email 1 for Carl"]


def test_the_tick_checks_the_exit_itself_when_the_follow_up_has_not_run_yet(capture, make_flow, tick, start):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="dora@example.com", first_name="Dora")
    tick(start)
    lead_set_status(lead=lead, status="won", actor=None, sale_amount=Decimal("10"))  # after-commit work not run

    tick(start + timedelta(days=3))

    assert subjects() == ["Email 1 for Dora"]
    enrollment = lead.enrollments.get()
    assert (enrollment.status, enrollment.exit_reason) == (Enrollment.Status.EXITED, "converted")


def _queue_then_sell(lead, django_capture_on_commit_callbacks, start) -> OutboxEntry:
    nurture_tick(now=start)  # the message is written; its outbox entry has not run yet (a slow queue)
    entry = lead.outbox_entries.get(kind=follow_ups.EMAIL)
    with django_capture_on_commit_callbacks(execute=True):
        lead_set_status(lead=lead, status="won", actor=None, sale_amount=Decimal("10"))
    return entry


def test_a_message_queued_before_the_sale_is_not_sent(
    capture, make_flow, start, mailoutbox, django_capture_on_commit_callbacks
):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="eve@example.com", first_name="Eve")
    entry = _queue_then_sell(lead, django_capture_on_commit_callbacks, start)

    assert outbox_process(entry_id=entry.pk) == "done"

    assert mailoutbox == []
    assert NurtureMessage.objects.get().status == NurtureMessage.Status.SUPPRESSED


def test_the_last_email_of_a_flow_queued_before_the_sale_is_not_sent(
    capture, make_flow, start, mailoutbox, django_capture_on_commit_callbacks
):
    make_flow(email_step(1))  # the email is the last step: the enrollment completes when it is queued
    lead = capture(email="eva@example.com", first_name="Eva")
    entry = _queue_then_sell(lead, django_capture_on_commit_callbacks, start)

    outbox_process(entry_id=entry.pk)

    assert mailoutbox == []
    assert NurtureMessage.objects.get().status == NurtureMessage.Status.SUPPRESSED


def test_a_message_queued_before_consent_was_withdrawn_is_not_sent_and_the_lead_leaves_the_flow(
    capture, make_flow, tick, start, mailoutbox
):
    make_flow(email_step(1), wait_step(days=2), email_step(2))
    lead = capture(email="ivy@example.com", first_name="Ivy")
    nurture_tick(now=start)  # the message is written; its outbox entry has not run yet (a slow queue)
    entry = lead.outbox_entries.get(kind=follow_ups.EMAIL)
    Lead.objects.filter(pk=lead.pk).update(consent=False)  # the person withdrew marketing consent

    assert outbox_process(entry_id=entry.pk) == "done"

    assert mailoutbox == []
    message = NurtureMessage.objects.get()
    assert (message.status, message.error) == (
        NurtureMessage.Status.SUPPRESSED,
        "marketing consent withdrawn before sending",
    )
    tick(start + timedelta(days=3))
    assert mailoutbox == []
    enrollment = lead.enrollments.get()
    assert (enrollment.status, enrollment.exit_reason) == (Enrollment.Status.EXITED, "marketing consent withdrawn")


def test_a_win_back_flow_triggered_by_lost_sends_its_email(
    capture, make_flow, tick, start, mailoutbox, django_capture_on_commit_callbacks
):
    make_flow(email_step(1, subject="We miss you"), trigger=Flow.Trigger.STATUS, trigger_status="lost")
    lead = capture(email="fay@example.com", first_name="Fay")
    with django_capture_on_commit_callbacks(execute=True):
        lead_set_status(lead=lead, status="lost", actor=None, reason="went quiet")
    assert lead.enrollments.filter(status=Enrollment.Status.ACTIVE).count() == 1

    tick(start + timedelta(minutes=1))

    assert subjects() == ["We miss you"]


# --- 6. quiet hours and the frequency cap -----------------------------------------------------
def _local(day_offset: int, hour: int, minute: int = 0) -> datetime:
    day = timezone.now().astimezone(NEW_YORK).date() + timedelta(days=day_offset)
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


def test_quiet_hours_postpone_an_email_to_the_morning_in_the_leads_time_zone(
    settings, capture, make_flow, tick, mailoutbox
):
    settings.NURTURE_QUIET_HOURS = "21:00-08:00"
    settings.NURTURE_EMAIL_MIN_HOURS = 4
    make_flow(email_step(1), email_step(2))
    lead = capture(email="gil@example.com", first_name="Gil", country="US")
    late_evening = _local(1, 23)

    tick(late_evening)

    assert mailoutbox == []
    enrollment = lead.enrollments.get()
    assert enrollment.next_run_at == _local(2, 8)  # 08:00 in New York, not UTC
    assert enrollment.step.position == 0

    tick(_local(2, 7, 59))
    assert mailoutbox == []
    tick(_local(2, 8))
    assert subjects() == ["Email 1 for Gil"]

    # The second email comes right after, but the cap spaces them NURTURE_EMAIL_MIN_HOURS apart.
    enrollment.refresh_from_db()
    assert enrollment.next_run_at == _local(2, 12)
    tick(_local(2, 11, 59))
    assert subjects() == ["Email 1 for Gil"]
    tick(_local(2, 12))
    assert subjects() == ["Email 1 for Gil", "Email 2 for Gil"]


def test_the_frequency_cap_holds_across_flows(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 24
    first, second = make_flow(email_step(1)), make_flow(email_step(2))
    lead = LeadFactory(consent=True, first_name="Hal", email="hal@example.com")
    lead_enroll(flow=first, lead=lead)
    lead_enroll(flow=second, lead=lead)

    tick(start)

    assert len(mailoutbox) == 1  # one email per lead per 24 h, whichever flow it comes from
    tick(start + timedelta(hours=23))
    assert len(mailoutbox) == 1
    tick(start + timedelta(hours=24, minutes=1))
    assert sorted(subjects()) == ["Email 1 for Hal", "Email 2 for Hal"]


def test_the_frequency_cap_is_the_persons_across_their_leads(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 24
    flow = make_flow(email_step(1))
    # One person asked two offers: two leads (neither a duplicate of the other), one address.
    leads = [LeadFactory(consent=True, first_name="Hal", email="hal@example.com") for _ in range(2)]
    other = LeadFactory(consent=True, first_name="Ida", email="ida@example.com")
    for lead in (*leads, other):
        lead_enroll(flow=flow, lead=lead)

    tick(start)

    assert sorted(message.to[0] for message in mailoutbox) == ["hal@example.com", "ida@example.com"]
    tick(start + timedelta(hours=23))
    assert len(mailoutbox) == 2
    tick(start + timedelta(hours=24, minutes=1))
    assert sorted(message.to[0] for message in mailoutbox) == ["hal@example.com", "hal@example.com", "ida@example.com"]


def test_a_wait_until_a_weekday_and_time_uses_the_leads_time_zone(make_flow, tick, start):
    flow = make_flow(wait_step(wait_minutes=None, wait_until_weekday=1, wait_until_time=time(9, 30)), email_step(1))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, country="US"))

    tick(start)

    enrollment.refresh_from_db()
    local = enrollment.next_run_at.astimezone(NEW_YORK)
    assert (local.isoweekday(), local.time()) == (1, time(9, 30))
    assert timedelta(0) < enrollment.next_run_at - start <= timedelta(days=7)


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def test_a_lead_with_a_los_angeles_number_gets_its_email_at_nine_pacific(settings, capture, make_flow, tick):
    settings.NURTURE_QUIET_HOURS = "21:00-09:00"
    make_flow(email_step(1))
    # A US lead: by country alone it would be New York, three hours earlier.
    lead = capture(email="lou@example.com", first_name="Lou", country="US", phone="+1 213 555 0143")
    los_angeles_evening = datetime.combine(
        timezone.now().astimezone(LOS_ANGELES).date() + timedelta(days=1), time(22, 0), tzinfo=LOS_ANGELES
    )
    nine_pacific = datetime.combine(los_angeles_evening.date() + timedelta(days=1), time(9, 0), tzinfo=LOS_ANGELES)

    tick(los_angeles_evening)

    enrollment = lead.enrollments.get()
    assert enrollment.next_run_at == nine_pacific
    tick(nine_pacific - timedelta(minutes=1))
    assert subjects() == []
    tick(nine_pacific)
    assert subjects() == ["Email 1 for Lou"]


@pytest.mark.parametrize(
    ("country", "phone", "zone"),
    [
        ("CA", "", "America/Toronto"),  # zone.tab lists St John's first
        ("AU", "", "Australia/Sydney"),  # ... and Lord Howe Island
        ("US", "", "America/New_York"),
        ("US", "+1 416 555 0100", "America/Toronto"),  # the number's area wins over the country
        ("GB", "+1 555 555 0100", "Europe/London"),  # a number with no known area falls back to the country
        ("", "", "UTC"),
    ],
)
def test_a_leads_time_zone_comes_from_its_phone_then_its_countrys_most_populous_zone(country, phone, zone):
    e164 = normalise_phone(phone, country or None)[0] if phone else ""
    assert lead_zone(country, e164) == ZoneInfo(zone)


def test_every_country_with_several_zones_names_its_most_populous_one():
    several = {country for country, zones in zones_by_country().items() if len(zones) > 1}
    assert several - MOST_POPULOUS_ZONE.keys() == set()
    for country, zone in MOST_POPULOUS_ZONE.items():
        assert zone in zones_by_country()[country]


# --- 7. branches, actions, pause, edits ----------------------------------------------------------
def _branch_flow(make_flow, condition: str, value: str = ""):
    return make_flow(
        email_step(1),
        wait_step(days=1),
        {"kind": FlowStep.Kind.BRANCH, "condition": condition, "condition_value": value, "goto_position": 50},
        email_step(2, subject="Reminder"),
        wait_step(days=30),
        email_step(3, subject="Thanks for reading"),
    )


def _engage(client, how: str, sent) -> None:
    body = sent.alternatives[0][0]
    if how == "open":
        assert client.get(link_path(open_pixel(body))).status_code == 200
    elif how == "click":
        assert client.get(link_path(tracked_links(body)[0])).status_code == 302


@pytest.mark.parametrize(
    "condition, value, engage, expected",
    [
        ("opened", "", "open", "Thanks for reading"),
        ("opened", "", "click", "Thanks for reading"),  # a click counts as an open (images blocked)
        ("opened", "", None, "Reminder"),
        ("clicked", "", "click", "Thanks for reading"),
        ("clicked", "", "open", "Reminder"),
        ("score_above", "56", "click", "Thanks for reading"),  # 51 + 10 for the click
        ("score_above", "56", "open", "Reminder"),  # 51 + 5
        ("status_is", "new", None, "Thanks for reading"),
        ("status_is", "working", None, "Reminder"),
    ],
)
def test_a_branch_follows_what_the_lead_did(
    condition, value, engage, expected, settings, client, capture, make_flow, tick, start, mailoutbox
):
    settings.NURTURE_EMAIL_MIN_HOURS = 1
    _branch_flow(make_flow, condition, value)
    lead = capture(email="ida@example.com", first_name="Ida")
    assert lead.score == 51
    tick(start)
    _engage(client, engage, mailoutbox[0])

    tick(start + timedelta(days=1, minutes=1))

    assert subjects() == ["Email 1 for Ida", expected]


@pytest.mark.parametrize(
    "condition, value, error",
    [
        ("score_above", "fifty", "Enter the score as a whole number from 0 to 100, e.g. 50."),
        ("score_above", "50.5", "Enter the score as a whole number from 0 to 100, e.g. 50."),
        ("score_above", "101", "Enter the score as a whole number from 0 to 100, e.g. 50."),
        ("score_above", "", "Enter the score as a whole number from 0 to 100, e.g. 50."),
        ("status_is", "sold", "Enter one of the statuses: new, contacted, working, won, lost, returned."),
    ],
)
def test_a_branch_value_the_tick_cannot_compare_is_refused_with_what_to_enter(condition, value, error, make_flow):
    flow = make_flow(email_step(1))
    step = FlowStep(flow=flow, position=20, kind=FlowStep.Kind.BRANCH, condition=condition, condition_value=value)
    step.goto_position = 0

    with pytest.raises(ValidationError) as refused:
        step.full_clean()

    assert refused.value.message_dict == {"condition_value": [error]}
    assert list(flow.steps.values_list("position", flat=True)) == [0]


def test_a_branch_value_is_kept_tidy_a_status_in_lower_case(make_flow):
    flow = make_flow(email_step(1))
    step = FlowStep(flow=flow, position=20, kind=FlowStep.Kind.BRANCH, condition="status_is", condition_value=" Won ")
    step.goto_position = 0
    step.full_clean()
    assert step.condition_value == "won"


def test_a_score_branch_stored_before_it_was_checked_never_holds_and_stops_no_flow(
    settings, capture, make_flow, tick, start, mailoutbox
):
    settings.NURTURE_EMAIL_MIN_HOURS = 0  # both flows' emails may go in one tick
    broken = _branch_flow(make_flow, "score_above", "56")
    FlowStep.objects.filter(flow=broken, kind=FlowStep.Kind.BRANCH).update(condition_value="fifty")
    other = make_flow(wait_step(days=1), email_step(4, subject="Other flow"))
    lead = capture(email="ida@example.com", first_name="Ida")
    assert lead.enrollments.count() == 2
    tick(start)

    tick(start + timedelta(days=1, minutes=1))

    assert subjects() == ["Email 1 for Ida", "Reminder", "Other flow"]
    assert Enrollment.objects.get(lead=lead, flow=other).status == Enrollment.Status.COMPLETED


def test_set_status_and_notify_rep_steps_do_what_they_say(make_flow, tick, start):
    flow = make_flow(
        {"kind": FlowStep.Kind.SET_STATUS, "new_status": "contacted"},
        {"kind": FlowStep.Kind.NOTIFY_REP},
        {"kind": FlowStep.Kind.SET_STATUS, "new_status": "won"},  # needs a sale amount: noted, flow goes on
        {"kind": FlowStep.Kind.SET_STATUS, "new_status": "lost"},
        email_step(1),
    )
    lead = LeadFactory(consent=True, status="new")
    enrollment = lead_enroll(flow=flow, lead=lead)

    tick(start)

    lead.refresh_from_db()
    assert lead.status == "lost" and lead.status_reason == f"nurture flow {flow.name}"
    assert lead.next_follow_up == timezone.localdate(start)
    transitions = [(e.data["from"], e.data["to"]) for e in lead.events.filter(kind="status").order_by("id")]
    assert transitions == [("new", "contacted"), ("contacted", "lost")]
    nurture = lead.events.filter(kind=LeadEvent.Kind.NURTURE)
    assert nurture.filter(data__follow_up="today", data__flow=flow.name).exists()
    assert nurture.filter(data__has_key="status_not_changed").exists()
    enrollment.refresh_from_db()  # the lost status ends the flow before its email
    assert (enrollment.status, enrollment.exit_reason) == (Enrollment.Status.EXITED, "lost")
    assert not NurtureMessage.objects.exists()


def test_a_paused_flow_holds_its_enrollments_and_resumes(make_flow, tick, start, mailoutbox):
    flow = make_flow(email_step(1))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name="Jo"))
    Flow.objects.filter(pk=flow.pk).update(status=Flow.Status.PAUSED)

    assert tick(start + timedelta(days=1)) == 0
    assert mailoutbox == []
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.ACTIVE and enrollment.step.position == 0

    Flow.objects.filter(pk=flow.pk).update(status=Flow.Status.ACTIVE)
    tick(start + timedelta(days=2))

    assert subjects() == ["Email 1 for Jo"]


def test_retiring_the_step_leads_wait_before_skips_it(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 1
    flow = make_flow(email_step(1), wait_step(days=1), email_step(2), email_step(3))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name="Kim"))
    tick(start)
    email_2 = flow.steps.get(position=20)
    email_2.is_retired = True
    email_2.save()

    tick(start + timedelta(days=1, minutes=1))

    assert subjects() == ["Email 1 for Kim", "Email 3 for Kim"]
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.COMPLETED
    with pytest.raises(ProtectedError):  # a step that messages point at is kept, never deleted
        flow.steps.get(position=0).delete()


def test_a_lead_sitting_on_a_retired_step_moves_on(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 1
    flow = make_flow(email_step(1), email_step(2), email_step(3))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name="Lou"))
    tick(start)  # email 1 sent; email 2 waits for the cap
    enrollment.refresh_from_db()
    assert enrollment.step.position == 10
    FlowStep.objects.filter(pk=enrollment.step_id).update(is_retired=True)

    tick(start + timedelta(hours=1, minutes=1))

    assert subjects() == ["Email 1 for Lou", "Email 3 for Lou"]


def test_retiring_the_wait_a_lead_is_in_keeps_the_next_wait(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 1
    flow = make_flow(email_step(1), wait_step(days=2), email_step(2), wait_step(days=3), email_step(3))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name="Max"))
    tick(start)
    FlowStep.objects.filter(flow=flow, position=10).update(is_retired=True)  # staff drop the 2-day wait

    tick(start + timedelta(days=2, minutes=1))
    assert subjects() == ["Email 1 for Max", "Email 2 for Max"]
    tick(start + timedelta(days=3))  # a day after email 2: the 3-day wait still runs

    assert subjects() == ["Email 1 for Max", "Email 2 for Max"]
    enrollment.refresh_from_db()
    assert enrollment.step.position == 30


def test_a_step_inserted_mid_way_reaches_the_leads_behind_it(settings, make_flow, tick, start, mailoutbox):
    settings.NURTURE_EMAIL_MIN_HOURS = 1
    flow = make_flow(email_step(1), wait_step(days=1), email_step(3))
    enrollment = lead_enroll(flow=flow, lead=LeadFactory(consent=True, first_name="Ned"))
    tick(start)
    FlowStep.objects.create(flow=flow, position=15, **email_step(2, subject="Inserted"))

    tick(start + timedelta(days=1, minutes=1))
    tick(start + timedelta(days=1, hours=1, minutes=2))

    assert subjects() == ["Email 1 for Ned", "Inserted", "Email 3 for Ned"]
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.COMPLETED


# --- the tick always ends -----------------------------------------------------------------------
@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) if the code under test runs longer than `seconds`."""
    import signal

    def expire(signum, frame):
        raise TimeoutError("the tick did not finish")

    previous = signal.signal(signal.SIGALRM, expire)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_long_chain_of_instant_steps_continues_at_the_next_tick(make_flow, tick, start):
    steps = [{"kind": FlowStep.Kind.NOTIFY_REP} for _ in range(25)]
    enrollment = lead_enroll(flow=make_flow(*steps, email_step(1)), lead=LeadFactory(consent=True))

    tick(start)

    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.ACTIVE and enrollment.step.position == 200
    tick(start + timedelta(minutes=1))
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.COMPLETED


def test_a_tick_ends_even_when_a_branch_loops_back_without_a_wait(make_flow, start, deadline):
    flow = make_flow(
        {"kind": FlowStep.Kind.NOTIFY_REP},
        # "score above 50: notify the rep again" - a loop with no wait in it, which the admin allows.
        {"kind": FlowStep.Kind.BRANCH, "condition": "score_above", "condition_value": "50", "goto_position": 0},
    )
    for lead in LeadFactory.create_batch(2, consent=True, score=80):
        lead_enroll(flow=flow, lead=lead)
    deadline(3)

    nurture_tick(now=start, batch_size=2)  # a full batch of looping enrollments

    assert Enrollment.objects.filter(next_run_at__gt=start).count() == 2  # they go on at the next tick


def test_a_wait_until_a_time_on_the_night_the_clocks_go_back_is_never_already_past():
    """New York, 1 November 2026: 01:00-02:00 comes twice. At 01:30 of the second pass (EST), 01:45 is
    next at 01:45 EST, not the 01:45 EDT an hour before now (which wall-clock comparison chose)."""
    from datetime import datetime as dt
    from zoneinfo import ZoneInfo

    from nurture.services.timing import wait_until

    zone = lead_zone("US", "+12125550123")
    assert str(zone) == "America/New_York"
    now = dt(2026, 11, 1, 1, 30, tzinfo=zone).replace(fold=1).astimezone(ZoneInfo("UTC"))  # 06:30 UTC

    due = wait_until(now=now, country="US", phone="+12125550123", weekday=None, at=time(1, 45))

    assert due == dt(2026, 11, 1, 6, 45, tzinfo=ZoneInfo("UTC"))
    # Before the first pass, the first 01:45 (EDT) is the next one.
    earlier = dt(2026, 11, 1, 1, 30, tzinfo=zone).astimezone(ZoneInfo("UTC"))  # 05:30 UTC
    assert wait_until(now=earlier, country="US", phone="+12125550123", weekday=None, at=time(1, 45)) == dt(
        2026, 11, 1, 5, 45, tzinfo=ZoneInfo("UTC")
    )

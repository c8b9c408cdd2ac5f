"""Who enters a flow: triggers, the leads that never enter, entry conditions, once at a time, re-entry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory, OfferFactory
from leads.services import lead_set_status
from leads.tests.factories import LeadFactory, QualificationRuleFactory
from nurture import follow_ups
from nurture.models import Enrollment, Flow, Suppression
from nurture.services.enrollment import enrollments_exit, lead_enroll

from .conftest import email_step, wait_step

pytestmark = pytest.mark.django_db


def flows_of(lead) -> set[str]:
    return set(lead.enrollments.filter(status="active").values_list("flow__name", flat=True))


# --- leads that never enter ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, context, why",
    [
        ({"email": "jo@example.com"}, {"honeypot": "http://spam"}, "invalid"),
        ({"email": "jo@example.com"}, {"is_test": True}, "test"),
        ({"phone": "+1 650 555 1212"}, {}, "no email"),
        ({"email": "jo@example.com", "consent": False}, {}, "no marketing consent"),
    ],
)
def test_invalid_test_emailless_and_unconsented_captures_never_enter(data, context, why, capture, make_flow):
    make_flow(email_step(1), name="Welcome")

    lead = capture(first_name="Jo", context=context, **data)

    assert not lead.enrollments.exists(), why
    assert not lead.outbox_entries.filter(kind=follow_ups.ENROLLMENT).exists(), why  # not even offered to flows


def test_a_duplicate_never_enters_but_the_original_does(capture, make_flow):
    make_flow(email_step(1), name="Welcome")

    original = capture(email="jo@example.com", first_name="Jo")
    duplicate = capture(email="JO@example.com", first_name="Jo")

    assert duplicate.is_duplicate
    assert flows_of(original) == {"Welcome"} and flows_of(duplicate) == set()


@pytest.mark.parametrize(
    "fields",
    [
        {"validity": "invalid"},
        {"is_duplicate": True},
        {"is_test": True},
        {"email": ""},
        {"email": "gone@example.com"},
        {"consent": False},
    ],
)
def test_such_leads_cannot_be_added_by_hand_either(fields, make_flow):
    Suppression.objects.create(email="gone@example.com", reason=Suppression.Reason.MANUAL)
    flow = make_flow(email_step(1), trigger=Flow.Trigger.MANUAL)

    assert lead_enroll(flow=flow, lead=LeadFactory(**{"consent": True, **fields})) is None
    assert lead_enroll(flow=flow, lead=LeadFactory(consent=True)) is not None


def test_an_address_suppressed_with_its_accent_typed_as_a_combining_mark_keeps_the_lead_out(capture, make_flow):
    Suppression.objects.create(email=" Jose\u0301@Example.com", reason=Suppression.Reason.MANUAL)
    make_flow(email_step(1))

    lead = capture(email="jos\u00e9@example.com", first_name="José")

    assert Suppression.objects.get().email == "jos\u00e9@example.com"  # stored as leads are
    assert not lead.enrollments.exists()


# --- entry conditions ---------------------------------------------------------------------------
# The captured lead: US, hard, valid, qualified, score 90, a push source, the fixture's campaign.
CONDITIONS = [
    ({"countries": ["DE", "FR"]}, False),
    ({"countries": ["CA", "US"]}, True),
    ({"lead_types": ["soft"]}, False),
    ({"lead_types": ["hard"]}, True),
    ({"min_score": 52}, False),
    ({"min_score": 51, "max_score": 51}, True),
    ({"max_score": 50}, False),
    ({"validities": ["suspect"]}, False),
    ({"validities": ["valid", "suspect"]}, True),
    ({"qualifications": ["disqualified"]}, False),
    ({"traffic_source_kinds": ["search", "social"]}, False),
    ({"traffic_source_kinds": ["push"]}, True),
    ({"offers": "another"}, False),
    ({"offers": "its own"}, True),
    ({"campaigns": "another"}, False),
    ({"campaigns": "its own"}, True),
]


@pytest.mark.parametrize("conditions, enters", CONDITIONS)
def test_entry_conditions_are_respected(conditions, enters, campaign, capture, make_flow):
    conditions = dict(conditions)
    if "offers" in conditions:
        conditions["offers"] = [campaign.offer if conditions["offers"] == "its own" else OfferFactory()]
    if "campaigns" in conditions:
        conditions["campaigns"] = [campaign if conditions["campaigns"] == "its own" else CampaignFactory()]
    make_flow(email_step(1), name="Conditional", **conditions)

    lead = capture(email="kay@example.com", first_name="Kay", country="US")

    assert (lead.score, lead.lead_type, lead.country) == (51, "hard", "US")
    assert flows_of(lead) == ({"Conditional"} if enters else set())


# --- triggers -----------------------------------------------------------------------------------
def test_each_trigger_takes_the_right_leads(campaign, capture, make_flow, django_capture_on_commit_callbacks):
    QualificationRuleFactory(offer=campaign.offer, field="country", operator="in", value="US")
    make_flow(email_step(1), name="Captured")
    make_flow(email_step(1), name="Qualified", trigger=Flow.Trigger.QUALIFIED)
    make_flow(email_step(1), name="Contacted", trigger=Flow.Trigger.STATUS, trigger_status="contacted")
    make_flow(email_step(1), name="By hand", trigger=Flow.Trigger.MANUAL)
    make_flow(email_step(1), name="Archived", status=Flow.Status.ARCHIVED)
    make_flow(email_step(1), name="Paused", status=Flow.Status.PAUSED)

    qualified = capture(email="lea@example.com", first_name="Lea", country="US")
    disqualified = capture(email="mo@example.com", first_name="Mo", country="DE")

    assert qualified.qualification == "qualified" and disqualified.qualification == "disqualified"
    assert flows_of(qualified) == {"Captured", "Qualified", "Paused"}  # a paused flow's leads wait
    assert flows_of(disqualified) == {"Captured", "Paused"}

    with django_capture_on_commit_callbacks(execute=True):
        lead_set_status(lead=disqualified, status="contacted", actor=None)

    assert flows_of(disqualified) == {"Captured", "Paused", "Contacted"}


# --- once at a time, re-entry -------------------------------------------------------------------
def test_a_lead_is_in_a_flow_at_most_once_at_a_time(capture, make_flow):
    flow = make_flow(email_step(1))
    lead = capture(email="ned@example.com", first_name="Ned")

    assert lead_enroll(flow=flow, lead=lead) is None  # already in it from the capture
    Enrollment.objects.filter(lead=lead).update(status=Enrollment.Status.PAUSED)
    assert lead_enroll(flow=flow, lead=lead) is None  # paused is still in it
    assert lead.enrollments.count() == 1


def test_re_entry_waits_for_the_cool_down(make_flow):
    flow = make_flow(email_step(1), reentry_cooldown_days=7)
    lead = LeadFactory(consent=True)
    first = lead_enroll(flow=flow, lead=lead)
    enrollments_exit(enrollments=Enrollment.objects.filter(pk=first.pk), reason="removed by staff")

    assert lead_enroll(flow=flow, lead=lead) is None
    Enrollment.objects.filter(pk=first.pk).update(left_at=timezone.now() - timedelta(days=6, hours=23))
    assert lead_enroll(flow=flow, lead=lead) is None
    Enrollment.objects.filter(pk=first.pk).update(left_at=timezone.now() - timedelta(days=7, minutes=1))

    again = lead_enroll(flow=flow, lead=lead)

    assert again is not None and again.pk != first.pk
    assert (again.status, again.step.position) == (Enrollment.Status.ACTIVE, 0)


def test_without_a_cool_down_a_lead_never_re_enters(make_flow, tick, start):
    flow = make_flow(email_step(1))  # reentry_cooldown_days empty
    lead = LeadFactory(consent=True)
    lead_enroll(flow=flow, lead=lead)
    tick(start)
    enrollment = lead.enrollments.get()
    assert enrollment.status == Enrollment.Status.COMPLETED
    Enrollment.objects.filter(pk=enrollment.pk).update(left_at=timezone.now() - timedelta(days=3650))

    assert lead_enroll(flow=flow, lead=lead) is None


def test_a_flow_without_live_steps_takes_nobody(make_flow):
    flow = make_flow(wait_step(days=1, is_retired=True))

    assert lead_enroll(flow=flow, lead=LeadFactory(consent=True)) is None

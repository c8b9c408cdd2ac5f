import datetime
import zoneinfo

import pytest
from django.utils import timezone

from campaigns.tests.factories import OfferFactory
from leadcrm.errors import Conflict, InvalidInput
from leads.models import LeadEvent, SalesRepProfile
from leads.services import lead_assign, lead_auto_assign, lead_claim, leads_escalate_uncontacted
from leads.services.assignment import working_minutes_between
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reps(staff_user_in):
    return [staff_user_in("Sales", username=name) for name in ("ana", "ben", "cho")]


def test_qualified_hard_leads_rotate_round_robin_among_sales_reps(reps, staff_user_in):
    staff_user_in("Marketing")  # not a rep
    leads = [LeadFactory() for _ in range(7)]

    for lead in leads:
        lead_auto_assign(lead_id=lead.pk)

    owners = [lead.assigned_to.username for lead in (lead.__class__.objects.get(pk=lead.pk) for lead in leads)]
    assert owners == ["ana", "ben", "cho", "ana", "ben", "cho", "ana"]
    assert LeadEvent.objects.filter(kind="assigned", data__how="round robin").count() == 7


def test_unavailable_or_inactive_reps_are_skipped(reps):
    SalesRepProfile.objects.create(user=reps[0], is_available=False)
    reps[1].is_active = False
    reps[1].save()

    lead = lead_auto_assign(lead_id=LeadFactory().pk)

    assert lead.assigned_to == reps[2]


def test_reps_restricted_by_country_and_offer(reps):
    offer = OfferFactory()
    SalesRepProfile.objects.create(user=reps[0], countries=["DE"])
    SalesRepProfile.objects.create(user=reps[1]).offers.add(offer)

    german = lead_auto_assign(lead_id=LeadFactory(country="DE").pk)
    us_other_offer = lead_auto_assign(lead_id=LeadFactory(country="US").pk)

    assert german.assigned_to == reps[0]
    assert us_other_offer.assigned_to == reps[2]  # ana only takes DE, ben only the other offer


@pytest.mark.parametrize(
    "changes",
    [
        {"lead_type": "soft"},
        {"validity": "suspect"},
        {"qualification": "disqualified"},
        {"is_duplicate": True},
        {"is_test": True},
    ],
)
def test_only_valid_qualified_hard_leads_are_assigned_automatically(reps, changes):
    lead = lead_auto_assign(lead_id=LeadFactory(**changes).pk)
    assert lead.assigned_to is None


def test_with_no_rep_the_lead_waits_in_the_queue():
    lead = lead_auto_assign(lead_id=LeadFactory().pk)
    assert lead.assigned_to is None


def test_auto_assign_twice_keeps_the_first_rep(reps):
    lead = LeadFactory()
    lead_auto_assign(lead_id=lead.pk)
    again = lead_auto_assign(lead_id=lead.pk)
    assert again.assigned_to == reps[0]
    assert LeadEvent.objects.filter(lead=lead, kind="assigned").count() == 1


def test_claim_is_first_come_first_served(reps):
    lead = LeadFactory()
    lead_claim(lead=lead, user=reps[1])
    with pytest.raises(Conflict, match="already assigned to ben"):
        lead_claim(lead=lead, user=reps[2])
    lead.refresh_from_db()
    assert lead.assigned_to == reps[1]


def test_managers_reassign_only_to_sales_reps(reps, staff_user_in):
    manager = staff_user_in("Managers")
    lead = LeadFactory(assigned_to=reps[0])

    lead_assign(lead=lead, to_user=reps[2], actor=manager)
    with pytest.raises(InvalidInput, match="not an active sales rep"):
        lead_assign(lead=lead, to_user=manager, actor=manager)

    lead.refresh_from_db()
    assert lead.assigned_to == reps[2]
    event = lead.events.get(kind="assigned")
    assert (event.actor, event.data["from"], event.data["to"]) == (manager, "ana", "cho")


# --- speed to lead --------------------------------------------------------------------------
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


@pytest.fixture
def office_hours(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    settings.WORKING_HOURS = "09:00-18:00"
    settings.WORKING_DAYS = [1, 2, 3, 4, 5]
    settings.SPEED_TO_LEAD_MINUTES = 15


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    # November 2026: the 2nd is a Monday, the 6th a Friday, the 7th a Saturday.
    return datetime.datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


def test_working_minutes_count_only_office_hours(office_hours):
    assert working_minutes_between(at(2, 10), at(2, 10, 20)) == 20
    assert working_minutes_between(at(2, 17, 50), at(3, 9, 10)) == 20  # evening and night skipped
    assert working_minutes_between(at(6, 17, 55), at(9, 9, 10)) == 15  # weekend skipped
    assert working_minutes_between(at(7, 10), at(7, 12)) == 0


def test_uncontacted_qualified_lead_is_escalated_after_15_working_minutes(office_hours, reps):
    late = LeadFactory(assigned_to=reps[0], assigned_at=at(2, 10), created_at=at(2, 10))
    in_time = LeadFactory(assigned_to=reps[1], assigned_at=at(2, 10, 10), created_at=at(2, 10, 10))
    contacted = LeadFactory(
        assigned_to=reps[2], assigned_at=at(2, 10), created_at=at(2, 10), first_contacted_at=at(2, 10, 5)
    )
    friday_evening = LeadFactory(created_at=at(6, 17, 55))

    escalated = leads_escalate_uncontacted(now=at(2, 10, 20))

    assert escalated == 1
    late.refresh_from_db()
    assert late.escalated_at == at(2, 10, 20) and late.assigned_to == reps[0]
    assert late.events.get(kind="escalated").data["assigned_to"] == "ana"
    for lead in (in_time, contacted, friday_evening):
        lead.refresh_from_db()
        assert lead.escalated_at is None
    assert leads_escalate_uncontacted(now=at(2, 10, 21)) == 0  # once only


def test_escalation_can_reassign_to_the_next_rep(office_hours, reps, settings):
    settings.LEAD_ESCALATION_REASSIGN = True
    lead = LeadFactory(assigned_to=reps[0], assigned_at=at(2, 10), created_at=at(2, 10))

    leads_escalate_uncontacted(now=at(2, 11))

    lead.refresh_from_db()
    assert lead.assigned_to in (reps[1], reps[2])
    assert lead.events.filter(kind="assigned", data__how="escalation").exists()


def test_assignment_happens_right_after_capture(capture, reps, django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        lead = capture(email="fast@example.com")
    lead.refresh_from_db()
    assert lead.assigned_to == reps[0]
    assert before <= lead.assigned_at <= timezone.now()


def test_soft_leads_are_not_escalated(office_hours):
    soft = LeadFactory(lead_type="soft", created_at=at(2, 9))
    assert leads_escalate_uncontacted(now=at(2, 12)) == 0
    soft.refresh_from_db()
    assert soft.escalated_at is None


@pytest.mark.parametrize(
    "changes", [{"validity": "invalid"}, {"is_test": True}, {"status": "won"}, {"is_duplicate": True}]
)
def test_leads_outside_the_queue_cannot_be_claimed(reps, changes):
    lead = LeadFactory(**changes)
    with pytest.raises(Conflict, match="not in the queue"):
        lead_claim(lead=lead, user=reps[0])
    lead.refresh_from_db()
    assert lead.assigned_to is None


def test_only_sales_reps_claim(staff_user_in):
    with pytest.raises(InvalidInput, match="not an active sales rep"):
        lead_claim(lead=LeadFactory(), user=staff_user_in("Managers"))

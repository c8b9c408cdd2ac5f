from decimal import Decimal

import pytest

from leadcrm.errors import Conflict, InvalidInput
from leads.models import LeadEvent, LeadStatus
from leads.services import lead_add_note, lead_log_call, lead_set_status
from leads.services.workflow import ALLOWED_TRANSITIONS
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

ALL = set(LeadStatus.values)


REFUSED = sorted((start, target) for start in ALL for target in ALL - ALLOWED_TRANSITIONS[start] - {start})


@pytest.mark.parametrize("start, target", REFUSED)
def test_refused_transition_changes_nothing(start, target, superuser):
    lead = LeadFactory(status=start)

    with pytest.raises(Conflict, match="cannot become"):
        lead_set_status(lead=lead, status=target, actor=superuser, reason="r", sale_amount=Decimal("1"))

    lead.refresh_from_db()
    assert lead.status == start
    assert not lead.events.filter(kind=LeadEvent.Kind.STATUS).exists()


def test_the_refused_list_covers_the_final_and_closed_states():
    assert ("returned", "new") in REFUSED and ("won", "lost") in REFUSED and ("new", "contacted") not in REFUSED


def test_returned_is_final():
    assert ALLOWED_TRANSITIONS[LeadStatus.RETURNED] == set()


def test_allowed_path_new_contacted_working_won_records_each_step_with_the_actor(superuser):
    lead = LeadFactory(campaign__offer__currency="EUR")

    lead_set_status(lead=lead, status="contacted", actor=superuser)
    lead_set_status(lead=lead, status="working", actor=superuser)
    lead = lead_set_status(lead=lead, status="won", actor=superuser, sale_amount=Decimal("1250.00"))

    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("1250.00"), "EUR")
    assert lead.converted_at is not None and lead.first_contacted_at is not None
    events = list(lead.events.filter(kind="status").values_list("data", "actor"))
    assert [data["to"] for data, _ in events] == ["contacted", "working", "won"]
    assert {actor for _, actor in events} == {superuser.pk}


def test_won_needs_an_amount_and_lost_or_returned_a_reason(superuser):
    lead = LeadFactory()
    with pytest.raises(InvalidInput, match="sale amount"):
        lead_set_status(lead=lead, status="won", actor=superuser)
    with pytest.raises(InvalidInput, match="Say why the lead is lost"):
        lead_set_status(lead=lead, status="lost", actor=superuser, reason="  ")
    lead.refresh_from_db()
    assert lead.status == "new"

    lead_set_status(lead=lead, status="returned", actor=superuser, reason="buyer: wrong number")
    lead.refresh_from_db()
    assert (lead.status, lead.status_reason) == ("returned", "buyer: wrong number")


def test_a_lost_lead_can_be_reopened():
    lead = LeadFactory(status="lost")
    assert lead_set_status(lead=lead, status="working", actor=None).status == "working"


def test_first_call_marks_a_new_lead_contacted_and_stops_the_clock(staff_user_in):
    rep = staff_user_in("Sales")
    lead = LeadFactory(assigned_to=rep)

    lead_log_call(lead=lead, rep=rep, outcome="no_answer", duration_seconds=0)
    lead_log_call(lead=lead, rep=rep, outcome="reached", duration_seconds=240, notes="wants a quote")

    lead.refresh_from_db()
    assert lead.status == "contacted"
    assert lead.first_contacted_at == lead.calls.order_by("called_at").first().called_at
    assert list(lead.events.values_list("kind", flat=True)) == ["call", "status", "call"]


def test_notes_are_recorded_on_the_timeline(staff_user_in):
    rep = staff_user_in("Sales")
    lead = LeadFactory()
    lead_add_note(lead=lead, author=rep, body="  Prefers email.  ")
    assert lead.notes.get().body == "Prefers email."
    assert lead.events.get(kind="note").actor == rep
    with pytest.raises(InvalidInput):
        lead_add_note(lead=lead, author=rep, body="   ")

"""The sales workspace in the admin, as each staff group sees and uses it."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory
from leads.admin import EstimatedCountPaginator
from leads.models import BlockedEmailDomain, CallLog, Lead, LeadEvent, LeadImport, LeadNote, OutboxEntry
from leads.services import lead_add_note
from leads.tests.factories import LeadFactory, QualificationRuleFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:leads_lead_changelist"
EXPORT_COLUMNS = [
    "public_id",
    "created_at",
    "status",
    "lead_type",
    "validity",
    "qualification",
    "score",
    "is_duplicate",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "country",
    "campaign__slug",
    "traffic_source__kind",
    "assigned_to__username",
]


@pytest.fixture
def rep(staff_user_in):
    return staff_user_in("Sales", username="rita")


@pytest.fixture
def other_rep(staff_user_in):
    return staff_user_in("Sales", username="oscar")


@pytest.fixture
def manager(staff_user_in):
    return staff_user_in("Managers", username="maya")


@pytest.fixture
def marketer(staff_user_in):
    return staff_user_in("Marketing", username="mark")


def logged_in(client, user):
    client.force_login(user)
    return client


def row_ids(response) -> set[int]:
    return {lead.pk for lead in response.context["cl"].result_list}


def message_texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def act(client, action, leads, **data):
    """Run a changelist action on the given leads and follow the redirect back, as a browser would."""
    return client.post(
        reverse(CHANGELIST),
        {"action": action, ACTION_CHECKBOX_NAME: [lead.pk for lead in leads], **data},
        follow=True,
    )


def action_names(response) -> set[str]:
    return {name for name, _label in response.context["action_form"].fields["action"].choices if name}


def change_form_data(lead, notes=(), calls=(), **overrides):
    """What the lead change page posts: the editable fields, the status change fields and both inlines."""
    data = {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "zip_code": lead.zip_code,
        "message": lead.message,
        "next_follow_up": lead.next_follow_up.isoformat() if lead.next_follow_up else "",
        "new_status": "",
        "change_reason": "",
        "sale_amount_input": "",
        "sale_currency_input": "",
    }
    # The read-only delivery and postback logs (shown to managers) post empty management forms.
    for prefix, rows in (("notes", notes), ("calls", calls), ("deliveries", ()), ("postbacks", ())):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(len(rows)),
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
        for index, row in enumerate(rows):
            data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
            data[f"{prefix}-{index}-lead"] = str(lead.pk)
    data.update(overrides)
    return data


def change_url(lead) -> str:
    return reverse("admin:leads_lead_change", args=[lead.pk])


# --- who sees which leads ---------------------------------------------------------------------
def test_sales_rep_sees_own_leads_and_the_workable_unassigned_queue_only(client, rep, other_rep):
    mine = LeadFactory(assigned_to=rep)
    my_invalid = LeadFactory(assigned_to=rep, validity="invalid")
    queued = LeadFactory()
    queued_suspect = LeadFactory(validity="suspect")
    others = LeadFactory(assigned_to=other_rep)
    LeadFactory(is_test=True)
    LeadFactory(is_duplicate=True)
    LeadFactory(validity="invalid")

    response = logged_in(client, rep).get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert row_ids(response) == {mine.pk, my_invalid.pk, queued.pk, queued_suspect.pk}
    assert others.email not in response.content.decode()


@pytest.mark.parametrize("group", ["Marketing", "Managers", None])
def test_marketing_managers_and_superusers_see_every_lead(client, staff_user_in, rep, group):
    leads = [
        LeadFactory(assigned_to=rep),
        LeadFactory(),
        LeadFactory(is_test=True),
        LeadFactory(is_duplicate=True),
        LeadFactory(validity="invalid"),
    ]

    response = logged_in(client, staff_user_in(group)).get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert row_ids(response) == {lead.pk for lead in leads}


def test_marketing_sees_a_lead_read_only_and_cannot_change_it_by_posting(client, marketer, rep):
    lead = LeadFactory(assigned_to=rep, first_name="Jane", company="Acme")
    client = logged_in(client, marketer)

    page = client.get(change_url(lead))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b'name="new_status"' not in page.content
    assert b"Acme" in page.content

    response = client.post(change_url(lead), change_form_data(lead, first_name="Hijacked", new_status="lost"))
    assert response.status_code == 403
    lead.refresh_from_db()
    assert (lead.first_name, lead.status) == ("Jane", "new")


def test_manager_can_edit_another_reps_lead(client, manager, rep):
    lead = LeadFactory(assigned_to=rep, company="Acme")
    client = logged_in(client, manager)

    page = client.get(change_url(lead))
    assert b'name="_save"' in page.content
    assert b'name="new_status"' in page.content

    response = client.post(change_url(lead), change_form_data(lead, company="Acme Solar", new_status="working"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert (lead.company, lead.status) == ("Acme Solar", "working")


def test_sales_rep_cannot_open_another_reps_lead_by_url(client, rep, other_rep):
    theirs = LeadFactory(assigned_to=other_rep, email="secret.buyer@example.com", company="Hidden Corp")
    client = logged_in(client, rep)

    response = client.get(change_url(theirs), follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert any("Perhaps it was deleted?" in text for text in message_texts(response))
    assert b"secret.buyer@example.com" not in response.content
    assert b"Hidden Corp" not in response.content


def test_sales_rep_cannot_change_another_reps_lead_by_posting(client, rep, other_rep):
    theirs = LeadFactory(assigned_to=other_rep, first_name="Olga")
    client = logged_in(client, rep)

    client.post(change_url(theirs), change_form_data(theirs, first_name="Hijacked", new_status="lost"))

    theirs.refresh_from_db()
    assert (theirs.first_name, theirs.status, theirs.assigned_to) == ("Olga", "new", other_rep)


def test_sales_rep_can_change_an_unassigned_lead_only_after_claiming_it(client, rep):
    lead = LeadFactory(first_name="Quinn")
    client = logged_in(client, rep)

    before = client.get(change_url(lead))
    assert before.status_code == 200
    assert b'name="_save"' not in before.content
    refused = client.post(change_url(lead), change_form_data(lead, first_name="Changed"))
    assert refused.status_code == 403
    lead.refresh_from_db()
    assert lead.first_name == "Quinn"

    act(client, "claim_leads", [lead])
    after = client.get(change_url(lead))
    assert b'name="_save"' in after.content
    follow_up = timezone.localdate() + datetime.timedelta(days=2)
    saved = client.post(
        change_url(lead), change_form_data(lead, first_name="Quincy", next_follow_up=follow_up.isoformat())
    )
    assert saved.status_code == 302
    lead.refresh_from_db()
    assert (lead.first_name, lead.next_follow_up, lead.assigned_to) == ("Quincy", follow_up, rep)


# --- actions ------------------------------------------------------------------------------------
def test_claiming_a_queued_lead_assigns_it_to_the_rep(client, rep):
    lead = LeadFactory()

    response = act(logged_in(client, rep), "claim_leads", [lead])

    assert "1 lead(s) assigned to you." in message_texts(response)
    lead.refresh_from_db()
    assert lead.assigned_to == rep
    assert lead.assigned_at is not None
    event = lead.events.get(kind=LeadEvent.Kind.ASSIGNED)
    assert (event.actor, event.data["how"]) == (rep, "claimed")


def test_second_rep_claiming_the_same_lead_gets_an_error(client, rep, other_rep):
    lead = LeadFactory(first_name="Sam", last_name="Taken")
    # Both reps had the queue open; the first one claims the lead before the second one does.
    act(logged_in(client, rep), "claim_leads", [lead])

    response = act(logged_in(client, other_rep), "claim_leads", [lead])

    assert message_texts(response) == ["1 lead(s) are no longer in your queue; someone else may have claimed them."]
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    lead.refresh_from_db()
    assert lead.assigned_to == rep


def test_manager_assigns_leads_to_a_rep_through_an_intermediate_form(client, manager, rep):
    leads = [LeadFactory(), LeadFactory()]
    client = logged_in(client, manager)

    form_page = client.post(
        reverse(CHANGELIST), {"action": "assign_leads", ACTION_CHECKBOX_NAME: [lead.pk for lead in leads]}
    )
    assert form_page.status_code == 200
    assert "admin/leads/lead/action_form.html" in [template.name for template in form_page.templates]
    assert rep in form_page.context["form"].fields["rep"].queryset
    assert Lead.objects.filter(assigned_to__isnull=False).count() == 0

    response = act(client, "assign_leads", leads, apply="1", rep=str(rep.pk))

    assert f"2 lead(s) assigned to {rep}." in message_texts(response)
    assert set(Lead.objects.values_list("assigned_to", flat=True)) == {rep.pk}
    assert LeadEvent.objects.filter(kind="assigned", actor=manager, data__how="by hand").count() == 2


def test_manager_can_take_a_lead_back_into_the_queue(client, manager, rep):
    lead = LeadFactory(assigned_to=rep)

    act(logged_in(client, manager), "assign_leads", [lead], apply="1", rep="")

    lead.refresh_from_db()
    assert lead.assigned_to is None


def test_sales_rep_gets_no_assign_or_export_action(client, rep, other_rep):
    lead = LeadFactory(assigned_to=rep)
    client = logged_in(client, rep)

    choices = action_names(client.get(reverse(CHANGELIST)))
    assert choices == {"claim_leads", "mark_contacted", "mark_won", "mark_lost"}

    assign = act(client, "assign_leads", [lead], apply="1", rep=str(other_rep.pk))
    assert message_texts(assign) == ["No action selected."]
    lead.refresh_from_db()
    assert lead.assigned_to == rep
    export = act(client, "export_csv", [lead])
    assert export.get("Content-Type", "").startswith("text/html")


def test_marketing_can_only_export_and_add_to_nurture_flows(client, marketer):
    LeadFactory()
    choices = action_names(logged_in(client, marketer).get(reverse(CHANGELIST)))
    assert choices == {"export_csv", "add_to_flow"}  # marketing runs the flows; it does not work leads


def test_manager_gets_every_lead_action(client, manager):
    LeadFactory()
    choices = action_names(logged_in(client, manager).get(reverse(CHANGELIST)))
    assert {"claim_leads", "assign_leads", "mark_contacted", "mark_won", "mark_lost", "export_csv"} <= choices


def test_mark_contacted_sets_the_status_and_starts_the_contact_clock(client, rep):
    lead = LeadFactory(assigned_to=rep)

    response = act(logged_in(client, rep), "mark_contacted", [lead])

    assert "1 lead(s) marked contacted." in message_texts(response)
    lead.refresh_from_db()
    assert lead.status == "contacted"
    assert lead.first_contacted_at is not None
    assert lead.events.get(kind="status").actor == rep


def test_rep_marking_a_queued_lead_contacted_is_refused_with_a_message_and_own_leads_still_change(client, rep):
    own = LeadFactory(assigned_to=rep, first_name="Own")
    queued = LeadFactory(first_name="Queued", last_name="Lead")

    response = act(logged_in(client, rep), "mark_contacted", [own, queued])

    assert response.status_code == 200
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1
    assert errors == ["Queued Lead: you can only change leads assigned to you; claim it first."]
    assert "1 lead(s) marked contacted." in message_texts(response)
    own.refresh_from_db()
    queued.refresh_from_db()
    assert (own.status, queued.status) == ("contacted", "new")
    assert queued.assigned_to is None


def test_mark_won_asks_for_the_sale_amount_before_recording_the_sale(client, rep):
    lead = LeadFactory(assigned_to=rep, status="working")
    client = logged_in(client, rep)

    asked = client.post(reverse(CHANGELIST), {"action": "mark_won", ACTION_CHECKBOX_NAME: [lead.pk]})
    assert asked.status_code == 200
    assert set(asked.context["form"].fields) == {"sale_amount", "sale_currency"}

    no_amount = client.post(
        reverse(CHANGELIST), {"action": "mark_won", ACTION_CHECKBOX_NAME: [lead.pk], "apply": "1", "sale_amount": ""}
    )
    assert no_amount.status_code == 200
    assert no_amount.context["form"].errors["sale_amount"] == ["Enter the sale amount."]
    lead.refresh_from_db()
    assert lead.status == "working"

    response = act(client, "mark_won", [lead], apply="1", sale_amount="1250.50")

    assert "1 lead(s) marked won." in message_texts(response)
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("1250.50"), lead.offer.currency)
    assert lead.converted_at is not None


def test_mark_lost_requires_a_reason(client, rep):
    lead = LeadFactory(assigned_to=rep, status="contacted")
    client = logged_in(client, rep)

    no_reason = client.post(
        reverse(CHANGELIST), {"action": "mark_lost", ACTION_CHECKBOX_NAME: [lead.pk], "apply": "1", "reason": "  "}
    )
    assert no_reason.status_code == 200
    assert no_reason.context["form"].errors["reason"] == ["Say why the leads are lost."]
    lead.refresh_from_db()
    assert lead.status == "contacted"

    response = act(client, "mark_lost", [lead], apply="1", reason="Bought from a competitor")

    assert "1 lead(s) marked lost." in message_texts(response)
    lead.refresh_from_db()
    assert (lead.status, lead.status_reason) == ("lost", "Bought from a competitor")


def test_a_refused_transition_shows_an_error_and_changes_nothing(client, rep):
    lead = LeadFactory(assigned_to=rep, status="returned", first_name="Ret", last_name="Urned")

    response = act(logged_in(client, rep), "mark_contacted", [lead])

    assert "Ret Urned: A returned lead cannot become contacted." in message_texts(response)
    assert not any("marked contacted" in text for text in message_texts(response))
    lead.refresh_from_db()
    assert (lead.status, lead.first_contacted_at) == ("returned", None)
    assert not lead.events.filter(kind="status").exists()


@pytest.mark.parametrize("group", ["Marketing", "Managers"])
def test_export_csv_streams_a_header_row_and_the_selected_leads(client, staff_user_in, rep, group):
    campaign = CampaignFactory(slug="solar-us")
    chosen = [
        LeadFactory(campaign=campaign, email="first@example.com", assigned_to=rep),
        LeadFactory(campaign=campaign, email="second@example.com", phone="+16505551212", first_name="=HYPERLINK(1)"),
    ]
    LeadFactory(email="not.selected@example.com")

    response = act(logged_in(client, staff_user_in(group)), "export_csv", chosen)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == EXPORT_COLUMNS
    exported = {row[EXPORT_COLUMNS.index("email")]: dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows[1:]}
    assert set(exported) == {"first@example.com", "second@example.com"}
    assert exported["first@example.com"]["assigned_to__username"] == rep.username
    assert exported["second@example.com"]["phone"] == "+16505551212"
    assert exported["second@example.com"]["campaign__slug"] == "solar-us"
    # A formula typed into a public form is exported as text, not run by the spreadsheet.
    assert exported["second@example.com"]["first_name"] == "'=HYPERLINK(1)"


# --- change page ----------------------------------------------------------------------------------
def test_change_page_shows_timeline_score_breakdown_and_validity_reasons(client, rep):
    lead = LeadFactory(
        assigned_to=rep,
        validity="suspect",
        validity_reasons=["disposable_email: a throw-away inbox domain"],
        score=55,
        score_breakdown=[
            {"factor": "lead type", "points": 30, "detail": "hard"},
            {"factor": "validity", "points": 10, "detail": "suspect"},
        ],
    )
    LeadEvent.objects.create(lead=lead, kind=LeadEvent.Kind.CAPTURED, data={"door": "api"})
    lead_add_note(lead=lead, author=rep, body="Prefers <b>email</b>")

    page = logged_in(client, rep).get(change_url(lead)).content.decode()

    assert "disposable_email: a throw-away inbox domain" in page
    assert '<tr><th>lead type</th><td>hard</td><td class="num">+30</td></tr>' in page
    assert '<tr><th>validity</th><td>suspect</td><td class="num">+10</td></tr>' in page
    timeline = page[page.index('class="lc-timeline"') :]
    assert '<span class="lc-who">leadcrm</span> Arrived through the partner API.</li>' in timeline
    # What people typed is shown as text, never as markup.
    assert f'<span class="lc-who">{rep.username}</span> Note: Prefers &lt;b&gt;email&lt;/b&gt;</li>' in timeline


def test_status_change_to_won_without_an_amount_shows_a_form_error_and_changes_nothing(client, rep):
    lead = LeadFactory(assigned_to=rep, status="working", company="Acme")

    response = logged_in(client, rep).post(
        change_url(lead), change_form_data(lead, company="Acme Renamed", new_status="won")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["sale_amount_input"] == ["Enter the sale amount."]
    lead.refresh_from_db()
    assert (lead.status, lead.company, lead.sale_amount) == ("working", "Acme", None)
    assert not lead.events.filter(kind="status").exists()


def test_status_change_on_the_change_page_writes_a_status_event_with_the_actor(client, rep):
    lead = LeadFactory(assigned_to=rep, status="contacted")

    response = logged_in(client, rep).post(
        change_url(lead), change_form_data(lead, new_status="won", sale_amount_input="900", sale_currency_input="eur")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount, lead.sale_currency) == ("won", Decimal("900.00"), "EUR")
    event = lead.events.get(kind="status")
    assert event.actor == rep
    assert (event.data["from"], event.data["to"], Decimal(event.data["sale_amount"])) == ("contacted", "won", 900)


def test_change_page_offers_only_allowed_transitions(client, rep):
    lead = LeadFactory(assigned_to=rep, status="lost")

    page = logged_in(client, rep).get(change_url(lead))

    choices = [value for value, _label in page.context["adminform"].form.fields["new_status"].choices]
    assert sorted(choices) == ["", "returned", "working"]
    refused = client.post(change_url(lead), change_form_data(lead, new_status="won", sale_amount_input="5"))
    assert refused.status_code == 200
    lead.refresh_from_db()
    assert lead.status == "lost"


def test_adding_a_note_records_the_author_and_a_timeline_event(client, rep):
    lead = LeadFactory(assigned_to=rep)

    response = logged_in(client, rep).post(
        change_url(lead), change_form_data(lead, notes=[{"body": "Call back after lunch"}])
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    note = LeadNote.objects.get(lead=lead)
    assert (note.body, note.author) == ("Call back after lunch", rep)
    event = lead.events.get(kind="note")
    assert (event.actor, event.data["note"]) == (rep, "Call back after lunch")


def test_logging_a_first_call_records_the_rep_and_marks_a_new_lead_contacted(client, rep):
    lead = LeadFactory(assigned_to=rep)

    response = logged_in(client, rep).post(
        change_url(lead),
        change_form_data(lead, calls=[{"outcome": "reached", "duration_seconds": "95", "notes": "Wants a quote"}]),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    call = CallLog.objects.get(lead=lead)
    assert (call.rep, call.outcome, call.duration_seconds, call.notes) == (rep, "reached", 95, "Wants a quote")
    lead.refresh_from_db()
    assert lead.status == "contacted"
    assert lead.first_contacted_at == call.called_at
    assert lead.events.get(kind="call").actor == rep
    assert lead.events.get(kind="status").data["reason"] == "call logged"


# --- search ---------------------------------------------------------------------------------------
@pytest.fixture
def searchable(rep):
    return {
        "jane": LeadFactory(
            assigned_to=rep, email="jane.doe@example.com", first_name="Jane", last_name="Doe", click_id="ab12cd"
        ),
        "john": LeadFactory(
            assigned_to=rep, email="john.smith@example.com", first_name="John", last_name="Smith", phone="+16505551212"
        ),
        "numeric_click": LeadFactory(
            assigned_to=rep, email="push@example.com", first_name="Pat", last_name="Push", click_id="8812345678"
        ),
    }


def found(client, term) -> set[int]:
    return row_ids(client.get(reverse(CHANGELIST), {"q": term}))


@pytest.mark.parametrize(
    "term, who",
    [
        ("Jane.Doe@EXAMPLE.com", "jane"),
        ("jane.doe@example.com", "jane"),
        ("+16505551212", "john"),
        ("650 555 1212", "john"),
        ("ab12cd", "jane"),
        ("8812345678", "numeric_click"),
        ("smi", "john"),
        ("Do", "jane"),
    ],
)
def test_search_finds_a_lead_by_email_phone_click_id_or_name_start(client, rep, searchable, term, who):
    assert found(logged_in(client, rep), term) == {searchable[who].pk}


def test_search_does_not_match_the_middle_of_a_name_or_part_of_an_email(client, rep, searchable):
    client = logged_in(client, rep)
    assert found(client, "mith") == set()
    assert found(client, "doe@example.com") == set()


def test_search_stays_within_what_the_rep_may_see(client, rep, other_rep):
    LeadFactory(assigned_to=other_rep, email="theirs@example.com")
    assert found(logged_in(client, rep), "theirs@example.com") == set()


# --- query bound ----------------------------------------------------------------------------------
@pytest.mark.parametrize("group", [None, "Sales"])
def test_lead_changelist_costs_a_fixed_number_of_queries(
    client, staff_user_in, rep, other_rep, group, django_assert_max_num_queries
):
    user = rep if group == "Sales" else staff_user_in(group)
    holders = [rep, other_rep, None]

    def add_leads(count):
        campaigns = [CampaignFactory() for _ in range(4)]
        for index in range(count):
            lead = LeadFactory(
                campaign=campaigns[index % len(campaigns)],
                assigned_to=holders[index % len(holders)],
                is_duplicate=index % 7 == 0 and holders[index % len(holders)] is not None,
                escalated_at=timezone.now() if index % 5 == 0 else None,
            )
            lead_add_note(lead=lead, author=rep, body="note")

    client = logged_in(client, user)
    url = reverse(CHANGELIST)
    add_leads(3)
    client.get(url)  # warm caches (content types, session)
    with django_assert_max_num_queries(20) as small:
        first = client.get(url)
    add_leads(42)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)

    assert response.status_code == 200
    visible = Lead.objects.filter(Q(assigned_to=rep) | Q(assigned_to=None)) if group == "Sales" else Lead.objects
    assert len(row_ids(first)) < len(row_ids(response)) == visible.count()


# --- admin index ----------------------------------------------------------------------------------
def section(page: str, element_id: str) -> str:
    match = re.search(rf'<section class="lc-card" id="{element_id}">(.*?)</section>', page, re.S)
    return match.group(1) if match else ""


def test_rep_sees_own_open_follow_ups_due_today_or_earlier(client, rep, other_rep):
    today = timezone.localdate()
    LeadFactory(assigned_to=rep, first_name="Due", last_name="Today", next_follow_up=today)
    LeadFactory(
        assigned_to=rep,
        first_name="Over",
        last_name="Due",
        status="working",
        next_follow_up=today - datetime.timedelta(3),
    )
    LeadFactory(assigned_to=rep, first_name="Next", last_name="Week", next_follow_up=today + datetime.timedelta(7))
    LeadFactory(assigned_to=rep, first_name="Already", last_name="Won", status="won", next_follow_up=today)
    LeadFactory(assigned_to=other_rep, first_name="Other", last_name="Rep", next_follow_up=today)

    page = logged_in(client, rep).get(reverse("admin:index")).content.decode()

    box = section(page, "follow-ups-due")
    assert "Your follow-ups due today" in page
    assert "Due Today" in box
    assert "Over Due" in box
    assert box.index("Over Due") < box.index("Due Today")
    for absent in ("Next Week", "Already Won", "Other Rep"):
        assert absent not in box
    assert 'id="escalations"' not in page


def test_rep_with_nothing_due_is_pointed_to_the_unassigned_queue(client, rep):
    page = logged_in(client, rep).get(reverse("admin:index")).content.decode()
    assert "Nothing due." in section(page, "follow-ups-due")


def test_manager_sees_escalated_leads_nobody_contacted(client, manager, rep):
    now = timezone.now()
    LeadFactory(first_name="Esca", last_name="Lated", escalated_at=now - datetime.timedelta(hours=2))
    LeadFactory(first_name="Mine", last_name="Escalated", assigned_to=rep, escalated_at=now)
    LeadFactory(first_name="Called", last_name="Back", escalated_at=now, first_contacted_at=now)
    LeadFactory(first_name="Never", last_name="Escalated")

    page = logged_in(client, manager).get(reverse("admin:index")).content.decode()

    box = section(page, "escalations")
    assert "Escalated: qualified leads not contacted in time" in page
    assert "Esca Lated" in box
    assert "Mine Escalated" in box
    assert rep.username in box
    assert "Called Back" not in box
    assert "Never Escalated" not in box


# --- every group's pages --------------------------------------------------------------------------
PAGES = ("lead", "outboxentry", "qualificationrule", "blockedemaildomain", "leadimport")


@pytest.mark.parametrize(
    "group, can_view",
    [
        (None, set(PAGES)),
        ("Marketing", set(PAGES)),
        ("Managers", set(PAGES)),
        ("Sales", {"lead"}),
    ],
)
def test_each_group_gets_the_lead_admin_pages_its_permissions_allow(client, staff_user_in, group, can_view):
    user = staff_user_in(group)
    lead = LeadFactory(assigned_to=user if group == "Sales" else None)
    objects = {
        "lead": lead,
        "outboxentry": OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY),
        "qualificationrule": QualificationRuleFactory(offer=lead.offer),
        "blockedemaildomain": BlockedEmailDomain.objects.create(domain="mailinator.com"),
        "leadimport": LeadImport.objects.create(file_name="leads.csv", checksum="abc", created_by=user),
    }
    client = logged_in(client, user)
    assert client.get(reverse("admin:index")).status_code == 200

    for model in PAGES:
        expected = 200 if model in can_view else 403
        changelist = client.get(reverse(f"admin:leads_{model}_changelist"))
        assert changelist.status_code == expected, model
        change_page = client.get(reverse(f"admin:leads_{model}_change", args=[objects[model].pk]))
        assert change_page.status_code == expected, model
    upload = client.get(reverse("admin:leads_leadimport_upload"))
    assert upload.status_code == (200 if "leadimport" in can_view else 403)


def test_unfiltered_lead_list_on_postgresql_uses_the_row_estimate_not_count(monkeypatch):
    LeadFactory.create_batch(3)
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", -1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE leads_lead")
            cursor.execute("UPDATE pg_class SET reltuples = 4200000 WHERE relname = 'leads_lead'")
        expected_unfiltered = 4_200_000
    else:
        expected_unfiltered = 3  # SQLite has no estimate: exact count
    assert EstimatedCountPaginator(Lead.objects.all(), 50).count == expected_unfiltered
    assert EstimatedCountPaginator(Lead.objects.filter(status="new"), 50).count == 3


def test_lead_list_filters_by_score_band(client, superuser):
    LeadFactory(score=85, last_name="High")
    LeadFactory(score=50, last_name="Medium")
    LeadFactory(score=10, last_name="Low")
    client.force_login(superuser)

    response = client.get(reverse("admin:leads_lead_changelist"), {"score": "high"})

    assert [lead.last_name for lead in response.context["cl"].result_list] == ["High"]


# --- the list and page each role works in -----------------------------------------------------------
def test_a_reps_list_shows_callable_phones_and_mailable_emails(client, rep):
    LeadFactory(assigned_to=rep, first_name="Tia", phone="+16505550123", email="tia@example.com")

    page = logged_in(client, rep).get(reverse(CHANGELIST), {"assigned": "me", "open": "yes"}).content.decode()

    assert '<a href="tel:+16505550123">+16505550123</a>' in page
    assert '<a href="mailto:tia@example.com">tia@example.com</a>' in page
    assert re.search(r'id="lead-count">\s*1 lead\s*<', page)


def test_a_long_list_is_counted_up_to_a_cap_and_says_so(client, rep, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    LeadFactory.create_batch(5, assigned_to=rep)

    response = logged_in(client, rep).get(reverse(CHANGELIST), {"assigned": "me"})

    page = response.content.decode()
    assert re.search(r'id="lead-count">\s*3\+ leads \(narrow the filters to count them\)', page)
    assert len(response.context["cl"].result_list) == 5  # fewer than a page: all of them are shown


def test_the_lead_page_is_in_tabs_and_its_timeline_reads_as_sentences(client, manager):
    lead = LeadFactory(first_name="Noor", email="noor@example.com", phone="+16505550100")
    for kind, data in [
        (LeadEvent.Kind.CAPTURED, {"door": "landing_page", "campaign": "solar-us", "test": False}),
        (LeadEvent.Kind.VALIDATED, {"validity": "suspect", "reasons": ["disposable_email: throw-away inbox"]}),
        (LeadEvent.Kind.ASSIGNED, {"to": "rita", "from": None, "how": "round robin"}),
        (LeadEvent.Kind.STATUS, {"from": "new", "to": "contacted", "reason": ""}),
        (LeadEvent.Kind.DELIVERY, {"buyer": "Acme CRM", "outcome": "accepted", "reason": ""}),
        (LeadEvent.Kind.NURTURE, {"sent": "Your solar quote"}),
        (LeadEvent.Kind.NURTURE, {"strange": "shape"}),
    ]:
        LeadEvent.objects.create(lead=lead, kind=kind, data=data)

    page = logged_in(client, manager).get(change_url(lead)).content.decode()

    tabs = re.findall(r"activeFieldsetTab = '([a-z-]+)'", page)
    assert tabs == ["overview", "source-and-quality", "timeline", "deliveries-and-money", "emails-and-flows", "consent"]
    timeline = re.sub(
        r"<[^>]+>", " ", page[page.index('class="lc-timeline"') : page.index("</ol>", page.index("lc-timeline"))]
    )
    for sentence in (
        "Arrived through a landing page for campaign solar-us.",
        "Judged suspect: disposable_email: throw-away inbox.",
        "rita got it by round robin.",
        "Status changed from new to contacted.",
        "Delivery to Acme CRM: accepted.",
        "Emailed “Your solar quote”.",
        "Nurture: strange shape.",
    ):
        assert sentence in " ".join(timeline.split()), sentence
    assert '<a href="mailto:noor@example.com">' in page and '<a href="tel:+16505550100">' in page
    assert "In no nurture flow." in page  # the tab nurture adds through the registry


def test_the_outbox_list_names_each_kind_by_the_label_its_app_registered(client, superuser):
    lead = LeadFactory()
    OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY)
    OutboxEntry.objects.create(lead=lead, kind="nurture_email")
    client.force_login(superuser)

    page = client.get(reverse("admin:leads_outboxentry_changelist")).content.decode()
    filtered = client.get(reverse("admin:leads_outboxentry_changelist") + "?kind=nurture_email").content.decode()

    assert "Delivery to buyer" in page and "Nurture email" in page  # in the rows and the kind filter
    assert "Notification to supplier" in page  # a kind with no rows yet is still offered in the filter
    assert filtered.count('class="field-kind_label') == 1


def test_the_admins_history_keeps_no_personal_data_of_a_lead(client, rep, superuser):
    from django.contrib.admin.models import LogEntry as AdminLogEntry

    from leads.services.erasure import lead_erase

    lead = LeadFactory(assigned_to=rep, first_name="Jane", last_name="Doe", email="jane@example.com")
    logged_in(client, rep).post(
        change_url(lead),
        change_form_data(lead, first_name="Janet", notes=[{"body": "Her husband Bob, cell +1 650 555 0199"}]),
    )
    lead_erase(lead=lead, actor=superuser)

    # The save's own "Janet Doe was changed" message is shown once, on the next page.
    logged_in(client, rep).get(reverse("admin:index"))
    history = client.get(reverse("admin:leads_lead_history", args=[lead.pk]))

    assert history.status_code == 200
    page = history.content.decode()
    assert "Added lead note" in page and "Changed First name" in page
    for personal in ("Jane", "Doe", "jane@", "Bob", "555 0199"):
        assert personal not in page
    assert list(AdminLogEntry.objects.values_list("object_repr", flat=True)) == [f"Lead {lead.pk}"]
    assert not AdminLogEntry.objects.filter(change_message__contains="Bob").exists()


def test_the_admins_history_written_before_is_renamed_by_id_and_its_note_quotes_dropped(rep):
    import importlib

    from django.apps import apps
    from django.contrib.admin.models import LogEntry as AdminLogEntry
    from django.contrib.contenttypes.models import ContentType

    lead = LeadFactory()
    old = AdminLogEntry.objects.create(
        user=rep,
        content_type=ContentType.objects.get_for_model(Lead),
        object_id=str(lead.pk),
        object_repr="Janet Doe",
        action_flag=2,
        change_message='[{"changed": {"fields": ["First name"]}}, '
        '{"added": {"name": "lead note", "object": "Her husband Bob, cell +1 650 555 0199"}}]',
    )

    importlib.import_module("leadcrm.audit.migrations.0002_admin_history_without_personal_data").rename(apps, None)

    old.refresh_from_db()
    assert (old.object_repr, old.get_change_message()) == (
        f"Lead {lead.pk}",
        "Changed First name. Added lead note “—”.",
    )

"""The nurture admin as marketing staff use it."""

import io
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.tests.factories import LeadFactory
from nurture.models import Enrollment, FlowStep, Suppression
from nurture.services.flows import flow_retarget_branches

from .conftest import email_step, wait_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client, staff_user_in):
    user = staff_user_in("Marketing", email="marketer@example.com")
    client.force_login(user)
    return client


def _get_counting_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response, len(queries)


def _list_row(response, flow) -> tuple[int, int, int]:
    """The entered, active and exited counts the list shows for a flow."""
    html = response.content.decode()
    checkbox = html.index(f'name="_selected_action" value="{flow.pk}"')
    row = html[checkbox : html.index("</tr>", checkbox)]
    cells = {
        column: int(re.search(rf'<td class="field-{column}[ "][^>]*>\s*(\d+)\s*</td>', row).group(1))
        for column in ("entered", "active", "exited")
    }
    return cells["entered"], cells["active"], cells["exited"]


def test_the_flow_list_shows_each_flows_counts_in_the_same_queries_for_two_flows_or_thirty(
    marketer, make_flow, capture
):
    flow = make_flow(email_step(1), wait_step(days=2))
    capture(email="ann@example.com", first_name="Ann")
    capture(email="bob@example.com", first_name="Bob")
    other = make_flow(email_step(1), name="Other 0")
    url = reverse("admin:nurture_flow_changelist")

    two_flows, two_flows_queries = _get_counting_queries(marketer, url)
    more = [make_flow(email_step(1), name=f"Other {number}") for number in range(1, 29)]
    capture(email="cy@example.com", first_name="Cy")  # enters every flow
    thirty_flows, thirty_flows_queries = _get_counting_queries(marketer, url)

    # Session, user, permissions (2), the page count and the flows with their counts, whatever their number.
    assert two_flows_queries == thirty_flows_queries <= 8
    assert _list_row(two_flows, flow) == (2, 2, 0) and _list_row(two_flows, other) == (0, 0, 0)
    assert _list_row(thirty_flows, flow) == (3, 3, 0)
    assert {_list_row(thirty_flows, each) for each in [other, *more]} == {(1, 1, 0)}


def test_the_flow_page_shows_per_step_statistics(marketer, make_flow, capture, tick):
    flow = make_flow(email_step(1), wait_step(days=2))
    capture(email="ann@example.com", first_name="Ann")
    tick(timezone.now())

    page = marketer.get(reverse("admin:nurture_flow_change", args=[flow.pk]))

    stats = page.context["adminform"].form.instance
    assert stats.pk == flow.pk
    content = page.content.decode()
    assert "<th>Waiting</th>" in content and "preview" in content
    # entered, waiting, sent: the email step was reached and sent once; the lead now waits
    assert "<td>0. Send email</td><td>1</td><td>0</td><td>1</td>" in content
    assert "<td>10. Wait</td><td>1</td><td>1</td><td>0</td>" in content


def test_an_email_preview_renders_for_a_sample_or_chosen_lead_and_sends_a_test_to_the_staff_member_only(
    marketer, make_flow
):
    flow = make_flow(email_step(1))
    step = flow.steps.get()
    url = reverse("admin:nurture_flow_preview", args=[flow.pk, step.pk])
    lead = LeadFactory(first_name="Zoe")

    sample = marketer.get(url)
    chosen = marketer.get(url, {"lead": lead.pk})
    sent = marketer.post(url, {"to": "someone@elsewhere.example"})  # a field the page no longer has

    assert sample.context["subject"] == "Email 1 for Test"
    assert chosen.context["subject"] == "Email 1 for Zoe"
    assert "Test emails go to your own address, marketer@example.com." in sample.content.decode()
    assert sent.status_code == 200
    (test_email,) = mail.outbox
    assert test_email.to == ["marketer@example.com"] and test_email.subject == "[TEST] Email 1 for Test"
    assert test_email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [str(m) for m in sent.context["messages"]] == ["Test email sent to marketer@example.com."]


def test_a_test_send_for_a_staff_member_without_an_address_says_so_and_sends_nothing(client, staff_user_in, make_flow):
    client.force_login(staff_user_in("Marketing", email=""))
    flow = make_flow(email_step(1))
    url = reverse("admin:nurture_flow_preview", args=[flow.pk, flow.steps.get().pk])

    sent = client.post(url, {"to": "someone@elsewhere.example"})

    assert mail.outbox == []
    assert [str(m) for m in sent.context["messages"]] == [
        "Your account has no email address to send the test to: ask an administrator to add one."
    ]
    assert 'value="Send test email"' not in sent.content.decode()


def test_enrollment_actions_pause_resume_move_and_remove(marketer, make_flow, capture):
    flow = make_flow(email_step(1), wait_step(days=2), email_step(2))
    capture(email="ann@example.com", first_name="Ann")
    enrollment = Enrollment.objects.get()
    changelist = reverse("admin:nurture_enrollment_changelist")
    selected = {"_selected_action": [enrollment.pk]}

    marketer.post(changelist, {"action": "pause", **selected})
    assert Enrollment.objects.get().status == "paused"
    marketer.post(changelist, {"action": "resume", **selected})
    assert Enrollment.objects.get().status == "active"
    last = flow.steps.get(position=20)
    marketer.post(changelist, {"action": "move_to_step", "apply": "1", "step": last.pk, **selected})
    assert Enrollment.objects.get().step == last
    marketer.post(changelist, {"action": "remove", **selected})
    removed = Enrollment.objects.get()
    assert (removed.status, removed.exit_reason) == ("exited", "removed by staff")


def test_the_suppression_list_imports_and_exports(marketer, make_flow, capture):
    make_flow(email_step(1), wait_step(days=2))
    capture(email="ann@example.com", first_name="Ann")
    upload = io.BytesIO(b"email,name\nANN@example.com,Ann\nnot-an-address,X\n=carl@example.com,Carl\n")
    upload.name = "suppress.csv"

    response = marketer.post(reverse("admin:nurture_suppression_import"), {"file": upload}, follow=True)

    assert "2 address(es) suppressed. Lines without an address: 3." in response.content.decode()
    assert set(Suppression.objects.values_list("email", flat=True)) == {"ann@example.com", "=carl@example.com"}
    assert Enrollment.objects.get().status == "exited"  # suppressed addresses leave their flows
    export = marketer.post(
        reverse("admin:nurture_suppression_changelist"),
        {"action": "export_csv", "_selected_action": list(Suppression.objects.values_list("pk", flat=True))},
    )
    lines = export.content.decode().splitlines()
    assert lines[0] == "email,reason,created_at" and len(lines) == 3
    # An address may begin like a formula: quoted, so a spreadsheet shows it rather than runs it.
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["'=carl@example.com", "ann@example.com"]


def test_a_suppression_upload_names_lines_with_control_characters_and_stores_the_others(marketer):
    upload = io.BytesIO(
        b"email,name\nann@example.com,Ann\nb\x00ob@example.com,Bob\ncarl@example.com,Ca\x1brl\ndora@example.com,Dora\n"
    )
    upload.name = "suppress.csv"

    response = marketer.post(reverse("admin:nurture_suppression_import"), {"file": upload}, follow=True)

    assert response.status_code == 200
    message = (
        "2 address(es) suppressed. Not imported: line 3, column 1 (email) contains a NUL byte (U+0000); "
        "line 4, column 2 (name) contains a control character (U+001B). Fix those lines and import them again."
    )
    assert [(str(m), m.level_tag) for m in response.context["messages"]] == [(message, "warning")]
    assert message in response.content.decode()
    assert set(Suppression.objects.values_list("email", flat=True)) == {"ann@example.com", "dora@example.com"}


def test_a_suppression_upload_without_a_header_names_a_first_line_with_a_nul_byte(marketer):
    upload = io.BytesIO(b"ann\x00@example.com\nbob@example.com\n")
    upload.name = "suppress.csv"

    response = marketer.post(reverse("admin:nurture_suppression_import"), {"file": upload}, follow=True)

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("1 address(es) suppressed. Not imported: line 1, column 1 contains a NUL byte (U+0000).")
    assert list(Suppression.objects.values_list("email", flat=True)) == ["bob@example.com"]


def test_a_suppression_upload_names_an_address_too_long_to_store_and_stores_the_others(marketer):
    upload = io.BytesIO(b"email\nann@example.com\n" + b"x" * 250 + b"@example.com\nbob@example.com\n")
    upload.name = "suppress.csv"

    response = marketer.post(reverse("admin:nurture_suppression_import"), {"file": upload}, follow=True)

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        "2 address(es) suppressed. Not imported: line 3, the address is longer than 254 characters. "
        "Fix those lines and import them again."
    ]
    assert set(Suppression.objects.values_list("email", flat=True)) == {"ann@example.com", "bob@example.com"}


def test_leads_can_be_added_to_a_flow_from_the_lead_list(marketer, make_flow, campaign):
    flow = make_flow(email_step(1), trigger="manual")
    ready = LeadFactory(consent=True, campaign=campaign, email="ready@example.com")
    invalid = LeadFactory(consent=True, campaign=campaign, email="bad@example.com", validity="invalid")
    won = LeadFactory(consent=True, campaign=campaign, email="won@example.com", status="won")  # would leave at once
    selected = [ready.pk, invalid.pk, won.pk]

    response = marketer.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "add_to_flow", "apply": "1", "flow": flow.pk, "_selected_action": selected},
        follow=True,
    )

    assert "1 lead(s) added; 2 skipped" in response.content.decode()
    assert list(Enrollment.objects.values_list("lead_id", flat=True)) == [ready.pk]


def test_the_flow_editor_sums_the_flow_up_and_marks_each_kinds_fields(marketer, make_flow):
    flow = make_flow(
        email_step(1, subject="Your quote"),
        wait_step(days=2),
        {"kind": "branch", "condition": "opened", "goto_position": 40},
        {"kind": "notify_rep"},
        {"kind": "set_status", "new_status": "contacted"},
    )

    page = marketer.get(reverse("admin:nurture_flow_change", args=[flow.pk])).content.decode()

    summary = re.search(r'<ol class="lc-flow-summary">(.*?)</ol>', page, re.S).group(1)
    assert re.findall(r"<li>(.*?)</li>", summary) == [
        "Step 0: Send the email “Your quote”",
        "Step 10: Wait 2 days",
        "Step 20: If the lead opened the last email, go to step 40; otherwise go on",
        "Step 30: Ask the sales rep to follow up today",
        "Step 40: Set the lead&#x27;s status to contacted",
    ]
    # Each kind's fields are in a fieldset admin.js shows only for that kind; steps can be dragged.
    for kind in ("wait", "email", "branch", "set_status", "webhook", "audience"):
        assert page.count(f"step-kind step-kind-{kind}") == 5 + 1  # each step, and the empty form
    assert 'data-ordering-field="position"' in page


def test_a_new_flow_says_what_to_do_first(marketer):
    page = marketer.get(reverse("admin:nurture_flow_add")).content.decode()

    assert "Save the flow, then add its steps below" in page


def test_moving_steps_keeps_each_branch_pointing_at_the_same_step(make_flow):
    flow = make_flow(
        email_step(1),
        {"kind": "branch", "condition": "opened", "goto_position": 30},
        email_step(2),
        email_step(3, subject="The one the branch jumps to"),
    )
    old_positions = dict(flow.steps.values_list("pk", "position"))
    target = flow.steps.get(position=30)
    # Dragged to second place: the editor renumbers 0, 1, 2, 3 in the new order.
    for position, step in enumerate([flow.steps.get(position=0), target, *flow.steps.filter(position__in=[10, 20])]):
        FlowStep.objects.filter(pk=step.pk).update(position=position)

    assert flow_retarget_branches(flow=flow, old_positions=old_positions, edited=set()) == 1

    branch = flow.steps.get(kind="branch")
    assert branch.goto_position == FlowStep.objects.get(pk=target.pk).position == 1
    # A branch whose target was typed in the same save keeps what was typed.
    FlowStep.objects.filter(pk=branch.pk).update(goto_position=3)
    assert flow_retarget_branches(flow=flow, old_positions={}, edited={branch.pk}) == 0


def test_the_admins_history_names_a_suppressed_address_by_its_id(client, superuser):
    from django.contrib.admin.models import LogEntry as AdminLogEntry

    client.force_login(superuser)
    now = timezone.localtime()
    added = client.post(
        reverse("admin:nurture_suppression_add"),
        {"email": "ann@example.com", "reason": "unsubscribed", "created_at_0": now.date(), "created_at_1": "12:00"},
    )
    suppression = Suppression.objects.get()
    deleted = client.post(reverse("admin:nurture_suppression_delete", args=[suppression.pk]), {"post": "yes"})

    assert (added.status_code, deleted.status_code) == (302, 302)
    # The suppression's own row is gone; its history does not keep the address instead.
    assert list(AdminLogEntry.objects.values_list("object_repr", flat=True)) == [f"Suppression {suppression.pk}"] * 2

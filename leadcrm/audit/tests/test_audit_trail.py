"""The audit trail (django-auditlog) as staff make changes: in the admin, through its actions and over
the API, each change is one entry naming who made it and which fields changed; secrets and a lead's
personal data never land in it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.tests.factories import AdvertiserFactory, CampaignFactory
from leadcrm.staff_login.tokens import staff_token_create
from leads.models import (
    ApiKey,
    ApiScope,
    BlockedEmailDomain,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    Partner,
    QualificationRule,
    RoutePrice,
    SupplierPayout,
)
from leads.services import CaptureContext, lead_capture, parse_submission
from leads.services.erasure import PERSONAL_FIELDS
from leads.services.partners import api_key_create
from leads.services.retention import retention_run
from leads.tests.factories import LeadFactory, QualificationRuleFactory, delivered
from nurture.models import Flow, FlowStep

from ..tracked import LEAD_FIELDS_SHOWN
from .admin_forms import change_form_data

pytestmark = pytest.mark.django_db

PERSON = {
    "email": "ines.ortega@example.com",
    "phone": "+16505550199",
    "first_name": "Ines",
    "last_name": "Ortega",
    "company": "Ortega Roofing",
    "zip_code": "94025",
}


def entries_for(obj) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(obj).select_related("actor").order_by("id"))


def everything_logged() -> str:
    """Every text the audit trail holds, as one string to search."""
    return " ".join(
        f"{entry.object_repr} {entry.changes_text} {entry.changes} {entry.additional_data} {entry.serialized_data}"
        for entry in LogEntry.objects.all()
    )


def edit_in_admin(client, obj, **changes):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    response = client.post(url, change_form_data(client.get(url), **changes))
    assert response.status_code == 302, response.context and [
        response.context["adminform"].form.errors,
        *[inline.formset.errors for inline in response.context["inline_admin_formsets"]],
    ]


# --- each kind of change, through the admin page where staff make it --------------------------------
def _partner():
    return Partner.objects.create(name="Acme Leads", role=Partner.Role.SUPPLIER)


def _destination():
    return DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(), name="Acme CRM", url="https://crm.acme.example/in"
    )


def _route():
    campaign = CampaignFactory()
    return DeliveryRoute.objects.create(offer=campaign.offer, destination=_destination())


def _flow():
    flow = Flow.objects.create(name="Welcome")
    FlowStep.objects.create(flow=flow, position=0, kind=FlowStep.Kind.WAIT, wait_minutes=60)
    return flow


# What is edited, on which admin page, and the field the entry must name.
EDITS = {
    "partner": (_partner, lambda partner: partner, {"rate_limit_per_minute": 60}, "rate_limit_per_minute"),
    "api key": (
        lambda: api_key_create(partner=_partner(), scopes=["leads:write"], name="Production")[0],
        lambda key: key,
        {"name": "Staging"},
        "name",
    ),
    "destination": (_destination, lambda destination: destination, {"timeout_seconds": 20}, "timeout_seconds"),
    "route": (_route, lambda route: route, {"priority": 3}, "priority"),
    "route price": (
        lambda: RoutePrice.objects.create(route=_route(), country="US", price=Decimal("10.00")),
        lambda price: price.route,
        {"prices-0-price": "12.50"},
        "price",
    ),
    "supplier payout": (
        lambda: SupplierPayout.objects.create(partner=_partner(), campaign=CampaignFactory(), amount=Decimal("2.00")),
        lambda payout: payout.partner,
        {"payouts-0-amount": "2.75"},
        "amount",
    ),
    "qualification rule": (QualificationRuleFactory, lambda rule: rule, {"value": "US,CA,MX"}, "value"),
    "blocked email domain": (
        lambda: BlockedEmailDomain.objects.create(domain="spam.example"),
        lambda domain: domain,
        {"note": "a bot farm"},
        "note",
    ),
    "flow": (_flow, lambda flow: flow, {"reentry_cooldown_days": 30}, "reentry_cooldown_days"),
    "flow step": (
        lambda: _flow().steps.get(),
        lambda step: step.flow,
        {"steps-0-wait_minutes": 120},
        "wait_minutes",
    ),
    "lead": (lambda: LeadFactory(**PERSON), lambda lead: lead, {"next_follow_up": "2027-01-04"}, "next_follow_up"),
}


@pytest.mark.parametrize("kind", EDITS)
def test_an_edit_in_the_admin_is_recorded_with_who_made_it_and_the_field_changed(client, superuser, kind):
    make, page_of, changes, field = EDITS[kind]
    obj = make()
    client.force_login(superuser)

    edit_in_admin(client, page_of(obj), **changes)

    [entry] = [entry for entry in entries_for(obj) if entry.action == LogEntry.Action.UPDATE]
    assert entry.actor == superuser
    assert field in entry.changes_dict
    assert entry.remote_addr == "127.0.0.1"


@pytest.mark.parametrize(
    "model, make",
    [
        (BlockedEmailDomain, lambda: BlockedEmailDomain.objects.create(domain="spam.example")),
        (QualificationRule, QualificationRuleFactory),
        (Flow, _flow),
    ],
)
def test_a_deletion_in_the_admin_is_recorded_with_who_made_it(client, superuser, model, make):
    obj = make()
    client.force_login(superuser)

    response = client.post(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_delete", args=[obj.pk]), {"post": "yes"}
    )

    assert response.status_code == 302 and not model.objects.filter(pk=obj.pk).exists()
    [entry] = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model), object_pk=str(obj.pk), action=LogEntry.Action.DELETE
    )
    assert entry.actor == superuser


def test_a_domain_added_in_the_admin_is_recorded_as_created_by_its_author(client, staff_user_in):
    manager = staff_user_in("Managers")
    client.force_login(manager)

    client.post(reverse("admin:leads_blockedemaildomain_add"), {"domain": "mailinator.example", "note": ""})

    domain = BlockedEmailDomain.objects.get(domain="mailinator.example")
    [entry] = entries_for(domain)
    assert (entry.action, entry.actor, entry.changes_dict["domain"]) == (
        LogEntry.Action.CREATE,
        manager,
        ["None", "mailinator.example"],
    )


# --- changes made by services, from admin actions and the API ------------------------------------
def test_a_status_set_by_an_admin_action_is_recorded_as_the_managers(client, staff_user_in):
    manager = staff_user_in("Managers")
    lead = LeadFactory(**PERSON)
    client.force_login(manager)

    client.post(reverse("admin:leads_lead_changelist"), {"action": "mark_contacted", "_selected_action": [lead.pk]})

    [entry] = entries_for(lead)
    assert entry.actor == manager and entry.changes_dict["status"] == ["new", "contacted"]
    assert entry.object_repr == f"Lead {lead.pk}"  # not the person's name


def test_a_flow_paused_by_an_admin_action_is_recorded(client, staff_user_in):
    marketer = staff_user_in("Marketing")
    flow = _flow()
    Flow.objects.filter(pk=flow.pk).update(status=Flow.Status.ACTIVE)
    client.force_login(marketer)

    client.post(reverse("admin:nurture_flow_changelist"), {"action": "pause", "_selected_action": [flow.pk]})

    [entry] = [entry for entry in entries_for(flow) if entry.action == LogEntry.Action.UPDATE]
    assert entry.actor == marketer and entry.changes_dict["status"] == ["active", "paused"]


def test_an_api_key_made_and_revoked_in_the_admin_is_recorded_without_its_hash(client, staff_user_in):
    manager = staff_user_in("Managers")
    partner = _partner()
    client.force_login(manager)

    created = client.post(
        reverse("admin:leads_apikey_add"),
        {
            "partner": partner.pk,
            "name": "Production",
            "scopes": ["leads:write"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    key = ApiKey.objects.get()
    raw_key = created.context["raw_key"]  # shown once on the page
    client.post(reverse("admin:leads_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})

    create, revoke = entries_for(key)
    assert (create.action, create.actor, revoke.action, revoke.actor) == (
        LogEntry.Action.CREATE,
        manager,
        LogEntry.Action.UPDATE,
        manager,
    )
    assert "key_hash" not in create.changes_dict and "revoked_at" in revoke.changes_dict
    assert key.key_hash not in everything_logged()
    assert raw_key and raw_key not in everything_logged()


def test_a_managers_sale_reported_with_a_staff_token_is_recorded_as_theirs(staff_user_in):
    manager = staff_user_in("Managers")
    lead = LeadFactory(**PERSON)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_create(user=manager)[1]}")

    response = client.post(
        f"/api/v1/leads/{lead.public_id}/outcome/", {"outcome": "converted", "sale_amount": "640.00"}, format="json"
    )

    assert response.status_code == 201, response.json()
    changes = [entry for entry in entries_for(lead) if "status" in entry.changes_dict]
    assert [(entry.actor, entry.changes_dict["status"]) for entry in changes] == [(manager, ["new", "won"])]


def test_a_buyers_report_with_an_api_key_names_the_partner_and_key_not_a_user(db):
    lead = LeadFactory(**PERSON)
    delivered(lead)  # sold to the buyer: the only leads it may report on
    buyer = Partner.objects.create(name="Solar Buyer", role=Partner.Role.BUYER, advertiser=lead.offer.advertiser)
    key, raw_key = api_key_create(partner=buyer, scopes=[ApiScope.OUTCOMES_WRITE], name="Production")

    response = APIClient(HTTP_AUTHORIZATION=f"Api-Key {raw_key}").post(
        f"/api/v1/leads/{lead.public_id}/outcome/", {"outcome": "contacted"}, format="json"
    )

    assert response.status_code == 201, response.json()
    [entry] = [entry for entry in entries_for(lead) if "status" in entry.changes_dict]
    assert (entry.actor, entry.additional_data) == (None, {"partner": buyer.pk, "api_key": key.prefix})


def test_a_lead_captured_by_the_pipeline_is_on_its_timeline_not_in_the_audit_trail(db):
    campaign = CampaignFactory()

    lead = lead_capture(
        campaign=campaign,
        submission=parse_submission({**PERSON, "action": "quote"}),
        context=CaptureContext(door="api"),
    ).lead

    assert [entry.action for entry in entries_for(lead)] == []
    assert lead.events.filter(kind="captured").exists()


# --- what never lands in the log ----------------------------------------------------------------
def test_a_leads_personal_data_is_masked_in_its_changes_and_erasure_leaves_none_behind(client, staff_user_in):
    manager = staff_user_in("Managers")
    lead = LeadFactory(**PERSON, message="Call me after 5, my dog bites", status_reason="")
    client.force_login(manager)

    edit_in_admin(client, lead, first_name="Inés", last_name="Ortega-Ruiz", zip_code="94026")
    client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "erase_personal_data", "_selected_action": [lead.pk], "apply": "1", "confirm": "on"},
    )

    lead.refresh_from_db()
    assert lead.erased_at is not None
    edit, erasure = entries_for(lead)
    assert edit.changes_dict["first_name"] == ["[hidden]", "[hidden]"]  # that it changed, not what
    assert (
        erasure.changes_dict["personal data"][0] == "[hidden]" and "email" in erasure.changes_dict["personal data"][1]
    )
    assert erasure.changes_dict["erased_at"][0] == "None"
    assert erasure.actor == manager  # who had it erased
    logged = everything_logged()
    for value in [*PERSON.values(), "Inés", "Ortega-Ruiz", "94026", "dog bites"]:
        assert value not in logged


def test_leads_erased_by_the_retention_job_are_in_the_trail_with_no_one_behind_it():
    old = LeadFactory.create_batch(2, **{**PERSON, "created_at": timezone.now() - timedelta(days=1000)})
    young = LeadFactory(email="recent@example.com")

    retention_run()

    erased = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Lead))
    assert sorted(entry.object_id for entry in erased) == sorted(lead.pk for lead in old)
    assert all(entry.actor is None and entry.changes_dict["erased_at"][0] == "None" for entry in erased)
    assert not entries_for(young) and PERSON["email"] not in everything_logged()


def test_a_ping_post_buyers_ping_address_keeps_only_where_it_points():
    destination = DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(),
        name="Bidder",
        kind=DeliveryDestination.Kind.PING_POST,
        url="https://bid.example/post",
        ping_url="https://bid.example/ping?key=ping-222-secret",
    )

    [create] = entries_for(destination)

    assert create.changes_dict["ping_url"][1] == "https://bid.example/ping?[hidden]"
    assert "ping-222-secret" not in everything_logged()


def test_destination_secrets_are_left_out_and_its_url_keeps_only_where_it_points(client, superuser):
    destination = DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(),
        name="Acme CRM",
        url="https://crm.acme.example/in?api_key=k-123-secret",
        headers={"X-Token": "hdr-456-secret"},
        auth=DeliveryDestination.Auth.BASIC,
        auth_username="acme-user-789",
    )
    client.force_login(superuser)

    edit_in_admin(
        client,
        destination,
        url="https://crm2.acme.example/in?api_key=k-999-secret",
        headers='{"X-Token": "hdr-000-secret"}',
        new_auth_secret="pw-111-secret",
    )

    [_create, update] = entries_for(destination)
    assert update.actor == superuser
    assert update.changes_dict["url"] == [
        "https://crm.acme.example/in?[hidden]",
        "https://crm2.acme.example/in?[hidden]",
    ]
    assert update.changes_dict["headers"] == ["[hidden]", "[hidden]"]
    logged = everything_logged()
    for secret in ("k-123-secret", "k-999-secret", "hdr-456", "hdr-000", "acme-user-789", "pw-111"):
        assert secret not in logged
    destination.refresh_from_db()
    assert destination.auth_secret_encrypted not in logged


def test_every_field_erasure_blanks_is_masked_and_a_new_lead_field_would_be_too():
    masked = set(auditlog.get_model_fields(Lead)["mask_fields"])

    assert set(PERSONAL_FIELDS) | {"validity_reasons", "qualification_reasons"} <= masked
    # Masking is by default: a field is shown only when listed as safe, so one added later is masked.
    assert masked == {field.name for field in Lead._meta.concrete_fields} - LEAD_FIELDS_SHOWN - {"updated_at"}


def test_the_address_recorded_is_the_clients_not_a_forged_forwarded_for(client, superuser, settings):
    settings.CLIENT_IP_HEADER = ""  # no proxy: the socket's address
    domain = BlockedEmailDomain.objects.create(domain="spam.example")
    client.force_login(superuser)
    url = reverse("admin:leads_blockedemaildomain_change", args=[domain.pk])

    client.post(
        url,
        change_form_data(client.get(url), note="bots"),
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="198.51.100.66",
    )

    [entry] = [entry for entry in entries_for(domain) if entry.action == LogEntry.Action.UPDATE]
    assert entry.remote_addr == "203.0.113.9"

"""Every list page in the admin costs the same number of queries whatever it shows: one row or a page.

One helper measures each registered changelist twice over the demo business, with one row on the
page and with a full page; a list whose query count grows with its rows (a query per row for a
column or a link) fails, named."""

import uuid

import pytest
from axes.models import AccessAttempt
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, models, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule
from django_otp.plugins.otp_totp.models import TOTPDevice

from campaigns.tests.factories import UserFactory
from leadcrm.audit.services import access_log_record
from leads.models import (
    Auction,
    BlockedEmailDomain,
    BuyerSuppression,
    Lead,
    Partner,
    Postback,
    SalesRepProfile,
    SupplierPing,
)
from leads.services.partners import api_key_create
from nurture.models import Audience, Enrollment, Flow, NurtureMessage, Suppression

pytestmark = pytest.mark.django_db

FULL_PAGE = 25
# Lists the demo holds fewer than two rows of; they are measured wherever a test makes them.
NOT_IN_THE_DEMO = {
    "auth.group",  # the three roles and nothing more is fine, but the demo has them: measured anyway
    "authtoken.tokenproxy",
    "django_celery_beat.clockedschedule",
    "django_celery_beat.solarschedule",
    "leads.helddelivery",
    "leads.leadimport",
    "leads.partnernotification",
}


def changelist_queries(client, model_admin, per_page: int) -> int:
    """Queries of one view of the model's list with `per_page` rows on the page."""
    url = reverse(f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_changelist")
    original = model_admin.list_per_page
    model_admin.list_per_page = per_page
    try:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
    finally:
        model_admin.list_per_page = original
    assert response.status_code == 200, url
    return len(queries)


# Lists the demo leaves empty: a first row each, made here.
FIRST_ROWS = {
    "leads.apikey": lambda: api_key_create(partner=Partner.objects.first(), scopes=["leads:write"], name="Demo"),
    "leads.blockedemaildomain": lambda: BlockedEmailDomain.objects.create(domain="spam.test"),
    "leads.auction": lambda: Auction.objects.create(
        lead=Lead.objects.first(), offer=Lead.objects.first().offer, floor_price=1, currency="USD"
    ),
    "leads.postback": lambda: Postback.objects.create(
        lead=Lead.objects.first(), event="valid", payout=1, currency="USD"
    ),
    "leads.salesrepprofile": lambda: SalesRepProfile.objects.create(user=UserFactory(is_staff=True)),
    "leads.supplierping": lambda: SupplierPing.objects.create(
        partner=Partner.objects.first(),
        campaign=Lead.objects.first().campaign,
        price=5,
        currency="USD",
        expires_at=timezone.now(),
        lead=Lead.objects.first(),
    ),
    "leads.buyersuppression": lambda: BuyerSuppression.objects.create(
        advertiser=Lead.objects.first().offer.advertiser, kind="email", hash="a" * 64
    ),
    "nurture.audience": lambda: Audience.objects.create(name="Demo audience"),
    "nurture.suppression": lambda: Suppression.objects.create(email="gone@example.com", reason="unsubscribed"),
    "django_celery_beat.crontabschedule": lambda: CrontabSchedule.objects.create(minute="5"),
    "axes.accessattempt": lambda: AccessAttempt.objects.create(
        username="marketer", ip_address="203.0.113.5", failures_since_start=5, attempt_time=timezone.now()
    ),
    "otp_totp.totpdevice": lambda: TOTPDevice.objects.create(user=User.objects.first(), name="Phone", confirmed=True),
    "nurture.enrollment": lambda: Enrollment.objects.create(flow=Flow.objects.first(), lead=Lead.objects.first()),
    "audit.accesslogentry": lambda: access_log_record(
        user=User.objects.first(), kind="lead_page", path="/admin/", lead=Lead.objects.first()
    ),
    "nurture.nurturemessage": lambda: NurtureMessage.objects.create(
        enrollment=Enrollment.objects.first(),
        lead=Enrollment.objects.first().lead,
        step=Flow.objects.first().steps.first(),
        to_email="someone@example.com",
    ),
}
# Rows unique together with something a plain copy keeps: given another value.
ADJUST = {
    "leads.buyeraccount": lambda row: setattr(row, "currency", "EUR" if row.currency != "EUR" else "GBP"),
    "leads.salesrepprofile": lambda row: setattr(row, "user", UserFactory(is_staff=True)),
    "nurture.enrollment": lambda row: setattr(row, "lead", Lead.objects.exclude(pk=row.lead_id).first()),
    "leads.postback": lambda row: setattr(row, "lead", Lead.objects.exclude(pk=row.lead_id).first()),
    "nurture.nurturemessage": lambda row: setattr(row, "provider_id", f"<copy-{uuid.uuid4()}@example.com>"),
    "axes.accessattempt": lambda row: setattr(row, "ip_address", "203.0.113.6"),
    "leads.supplierping": lambda row: setattr(row, "lead", Lead.objects.exclude(pk=row.lead_id).first()),
    "leads.buyersuppression": lambda row: setattr(row, "hash", "b" * 64),
}


def second_row(model) -> None:
    """A copy of the model's one row, with fresh values where they must be unique: enough to see
    whether a list's query count grows."""
    row = model._default_manager.order_by("pk").first()
    if row is None:
        return
    for field in model._meta.concrete_fields:
        if field.primary_key:
            setattr(row, field.attname, None)
        elif field.unique and isinstance(field, models.UUIDField):
            setattr(row, field.attname, uuid.uuid4())
        elif field.unique and isinstance(field, models.CharField):
            setattr(row, field.attname, f"{getattr(row, field.attname)}2"[-field.max_length :])
    ADJUST.get(model._meta.label_lower, lambda row: None)(row)
    with transaction.atomic():
        row.save(force_insert=True)


def test_no_list_page_costs_a_query_per_row(client, superuser, settings):
    call_command("seed_demo", force=True)
    settings.DEBUG = True  # the nurture demo refuses to run elsewhere
    call_command("seed_nurture_demo")
    settings.DEBUG = False
    client.force_login(superuser)
    grown, measured, too_few = {}, [], []

    request = RequestFactory().get("/")
    request.user = superuser
    for model in apps.get_models(include_auto_created=True):
        if not admin.site.is_registered(model):
            continue
        model_admin = admin.site.get_model_admin(model)
        label = model._meta.label_lower
        rows = model_admin.get_queryset(request).count()
        if rows == 0 and label in FIRST_ROWS:
            FIRST_ROWS[label]()
            rows = 1
        if rows == 1 and label not in NOT_IN_THE_DEMO:
            second_row(model)
            rows = model_admin.get_queryset(request).count()
        if rows < 2:
            too_few.append(label)
            continue
        one, page = (changelist_queries(client, model_admin, size) for size in (1, min(rows, FULL_PAGE)))
        measured.append(label)
        if page != one:
            grown[label] = f"{one} queries for 1 row, {page} for {min(rows, FULL_PAGE)}"

    assert grown == {}
    assert set(too_few) <= NOT_IN_THE_DEMO, f"not measured: {sorted(set(too_few) - NOT_IN_THE_DEMO)}"
    assert len(measured) >= 25
    assert {"leads.lead", "leads.deliveryroute", "leads.qualificationrule", "leads.delivery"} <= set(measured)
    assert {"auditlog.logentry", "audit.accesslogentry"} <= set(measured)

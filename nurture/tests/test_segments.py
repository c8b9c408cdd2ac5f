"""Segment-triggered flows: every matching lead enters, once, and only real, unsuppressed ones with
marketing consent."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.tests.factories import LeadFactory
from nurture.models import Enrollment, Flow, Suppression
from nurture.selectors import flows_with_statistics
from nurture.services.engine import nurture_tick
from nurture.services.segments import segments_enroll

from .conftest import wait_step

pytestmark = pytest.mark.django_db


def test_a_segment_flow_enrolls_matching_leads_once_and_skips_the_rest(make_flow, campaign):
    make_flow(wait_step(days=1), trigger=Flow.Trigger.SEGMENT, countries=["US"], min_score=50, segment_days=30)
    match = LeadFactory(consent=True, campaign=campaign, country="US", score=70)
    LeadFactory(consent=True, campaign=campaign, country="DE", score=70)  # other country
    LeadFactory(consent=True, campaign=campaign, country="US", score=10)  # score too low
    LeadFactory(consent=True, campaign=campaign, country="US", score=70, is_test=True)
    LeadFactory(consent=True, campaign=campaign, country="US", score=70, validity="invalid")
    LeadFactory(consent=False, campaign=campaign, country="US", score=70)  # no marketing consent
    LeadFactory(consent=True, campaign=campaign, country="US", score=70, created_at=timezone.now() - timedelta(days=40))
    suppressed = LeadFactory(consent=True, campaign=campaign, country="US", score=70)
    Suppression.objects.create(email=suppressed.email, reason="unsubscribed")

    assert segments_enroll() == 1
    assert segments_enroll() == 0  # already in the flow

    assert list(Enrollment.objects.values_list("lead_id", flat=True)) == [match.pk]


def test_a_segment_flow_leaves_out_leads_whose_status_would_take_them_out_at_once_and_counts_no_conversion(
    make_flow, campaign, start
):
    flow = make_flow(wait_step(days=1), trigger=Flow.Trigger.SEGMENT, exit_statuses=["working"])
    new = LeadFactory(consent=True, campaign=campaign, status="new")
    for status in ("won", "lost", "returned", "working"):
        LeadFactory(consent=True, campaign=campaign, status=status)

    assert segments_enroll() == 1
    nurture_tick(now=start)

    assert list(Enrollment.objects.values_list("lead_id", flat=True)) == [new.pk]
    counts = flows_with_statistics().get(pk=flow.pk)
    assert (counts.entered, counts.active, counts.converted, counts.exited) == (1, 1, 0, 0)


def test_a_lead_that_left_a_segment_flow_returns_only_after_the_cool_down(make_flow, campaign):
    flow = make_flow(wait_step(days=1), trigger=Flow.Trigger.SEGMENT, reentry_cooldown_days=7)
    lead = LeadFactory(consent=True, campaign=campaign)
    segments_enroll()
    Enrollment.objects.update(status="exited", left_at=timezone.now() - timedelta(days=3))

    assert segments_enroll() == 0
    Enrollment.objects.update(left_at=timezone.now() - timedelta(days=8))
    assert segments_enroll() == 1
    assert flow.enrollments.filter(lead=lead, status="active").count() == 1

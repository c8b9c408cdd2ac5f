import pytest
from django.core.management import call_command

from nurture.models import Flow

pytestmark = pytest.mark.django_db


def test_the_demo_flow_is_created_once_and_is_valid(settings):
    settings.DEBUG = True
    call_command("seed_nurture_demo")
    call_command("seed_nurture_demo")

    flow = Flow.objects.get()
    assert flow.status == "active" and flow.steps.count() == 6
    for step in flow.steps.all():
        step.full_clean()  # what the admin would accept

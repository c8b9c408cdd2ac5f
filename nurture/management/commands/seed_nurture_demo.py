"""Demo nurture flow for `make run`: follow-up emails for solar leads, safe to run again."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns.models import Offer
from nurture.models import Flow, FlowStep

FLOW = "Solar quote follow-up"
STEPS: tuple[dict[str, Any], ...] = (
    {
        "kind": FlowStep.Kind.EMAIL,
        "subject": "Your solar quote, {{ lead.first_name|default:'there' }}",
        "body_text": "Hi {{ lead.first_name|default:'there' }},\n\nthanks for asking about {{ offer.name }}. "
        "See what a typical roof saves: https://example.com/solar-savings\n",
        "body_html": "<p>Hi {{ lead.first_name|default:'there' }},</p><p>Thanks for asking about {{ offer.name }}. "
        '<a href="https://example.com/solar-savings">See what a typical roof saves</a>.</p>',
    },
    {"kind": FlowStep.Kind.WAIT, "wait_minutes": 2 * 1440},
    {
        "kind": FlowStep.Kind.BRANCH,
        "condition": FlowStep.Condition.CLICKED,
        "goto_position": 50,
    },
    {
        "kind": FlowStep.Kind.EMAIL,
        "subject": "Still thinking about solar?",
        "body_text": "Hi {{ lead.first_name|default:'there' }},\n\nmost homes pay the panels back in 7 years.\n",
        "body_html": "<p>Hi {{ lead.first_name|default:'there' }},</p>"
        "<p>Most homes pay the panels back in 7 years.</p>",
    },
    {"kind": FlowStep.Kind.WAIT, "wait_minutes": 1440},
    {"kind": FlowStep.Kind.NOTIFY_REP},
)


class Command(BaseCommand):
    help = "Create the demo nurture flow (DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_nurture_demo runs only with DEBUG=true.")
        with transaction.atomic():
            flow, created = Flow.objects.get_or_create(
                name=FLOW, defaults={"status": Flow.Status.ACTIVE, "trigger": Flow.Trigger.CAPTURED}
            )
            if created:
                flow.offers.set(Offer.objects.filter(name="Home solar quote"))
                for position, step in enumerate(STEPS):
                    FlowStep.objects.create(flow=flow, position=position * 10, **step)
        self.stdout.write(self.style.SUCCESS(f"Demo nurture flow ready: {FLOW} ({flow.steps.count()} steps)."))

from celery import shared_task
from django.utils import timezone

from .models import Audience
from .services.audiences import audience_export_request, audience_export_run
from .services.engine import nurture_tick
from .services.segments import segments_enroll


@shared_task(ignore_result=True)
def nurture_tick_task() -> int:
    # Safe to run on several workers at once, or twice: batches are locked with SKIP LOCKED.
    return nurture_tick()


@shared_task(ignore_result=True)
def nurture_segments_task() -> int:
    # Safe twice: a lead in a flow is skipped, and the enrollment constraint stops a race.
    return segments_enroll()


@shared_task(acks_late=True, ignore_result=True)
def export_audience_task(export_id: int) -> None:
    # Safe twice: the export row is claimed pending -> running; a second run finds it taken.
    audience_export_run(export_id=export_id)


@shared_task(ignore_result=True)
def export_audience_scheduled_task(audience_id: int, format: str = "meta", mode: str = "incremental") -> None:
    """For schedules staff set in Periodic tasks (args: audience id, format, mode). One export per
    audience, format and mode per hour, however often the schedule fires."""
    audience = Audience.objects.get(pk=audience_id)
    audience_export_request(
        audience=audience, format=format, mode=mode, period=timezone.localtime().strftime("%Y-%m-%dT%H")
    )

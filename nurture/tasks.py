from celery import shared_task

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

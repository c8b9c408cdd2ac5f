from celery import shared_task

from .services.engine import nurture_tick


@shared_task(ignore_result=True)
def nurture_tick_task() -> int:
    # Safe to run on several workers at once, or twice: batches are locked with SKIP LOCKED.
    return nurture_tick()

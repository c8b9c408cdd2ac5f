from celery import shared_task

from .services.rollups import rollups_fold_clicks


# Beat runs it every minute (migration 0002). Safe to run twice, or in two workers at once: the fold
# locks its mark, and the clicks it adds and the mark it moves commit together.
@shared_task(ignore_result=True)
def fold_clicks_task() -> int:
    return rollups_fold_clicks()

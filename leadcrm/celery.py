import gc
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

app = Celery("leadcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _freeze_start_up_heap(**_kwargs: object) -> None:
    """A worker's modules, settings and app objects live as long as it does: moved out of the garbage
    collector's reach, a full collection (about 90 ms holding the GIL, every few thousand deliveries,
    stalling the calls in flight) walks only what tasks made since, not them too."""
    gc.collect()
    gc.freeze()

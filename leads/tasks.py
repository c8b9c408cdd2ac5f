from celery import shared_task
from django.conf import settings

from .services import leads_escalate_uncontacted, outbox_sweep
from .services.idempotency import idempotency_records_purge
from .services.inbound_ping import supplier_pings_purge
from .services.lead_import import lead_import_run
from .services.outbox import outbox_drain
from .services.retention import retention_run


# acks_late + reject_on_worker_lost (settings): a killed worker's message goes back to the broker.
# Idempotent: entries are claimed by a conditional UPDATE; a second run finds them not due. Prefork
# workers enforce the hard time limit, which is shorter than the claim; a batch starts no new work
# after half of it, outbound HTTP has its own deadline (at most 35 s a request) and a result
# recorded after a lost claim is dropped.
@shared_task(acks_late=True, ignore_result=True, time_limit=settings.OUTBOX_TASK_TIME_LIMIT)
def process_outbox_batch_task(entry_ids: list[int], queue: str | None = None) -> int:
    """Run these entries, and other due ones of the same queue up to a batch, as one batch; then the
    queue's next due batches while there are some and the task has time (a backlog is drained without
    a broker round trip per batch: the tasks sent for it find their entries done)."""
    return len(outbox_drain(entry_ids=entry_ids, queue=queue, top_up=True, keep_going=True))


@shared_task(acks_late=True, ignore_result=True, time_limit=settings.OUTBOX_TASK_TIME_LIMIT)
def process_outbox_entry_task(entry_id: int) -> int:
    """One entry alone: one whose worker stopped while running it, which the sweeper sends one per
    task (one that kills its worker then takes no other entry with it), or one queued by an earlier
    release, when every entry had its own task."""
    return len(outbox_drain(entry_ids=[entry_id], take_back=True))


@shared_task(ignore_result=True)
def sweep_outbox_task() -> int:
    return outbox_sweep()


@shared_task(ignore_result=True)
def escalate_uncontacted_leads_task() -> int:
    return leads_escalate_uncontacted()


@shared_task(acks_late=True, ignore_result=True)
def run_lead_import_task(lead_import_id: int) -> None:
    # Safe to run twice: each row's idempotency key makes a second run add nothing.
    lead_import_run(lead_import_id=lead_import_id)


@shared_task(ignore_result=True)
def purge_idempotency_records_task() -> int:
    return idempotency_records_purge()


@shared_task(ignore_result=True)
def purge_supplier_pings_task() -> int:
    return supplier_pings_purge()


@shared_task(acks_late=True, ignore_result=True)
def retention_task() -> dict[str, int]:
    # Daily (beat). Safe to run twice or at once in two workers: each batch takes only what is still
    # due and skips rows another run holds; a killed run leaves the rest for the next.
    return retention_run()

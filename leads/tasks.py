from celery import shared_task
from django.conf import settings

from .services import leads_escalate_uncontacted, outbox_process, outbox_sweep
from .services.idempotency import idempotency_records_purge
from .services.lead_import import lead_import_run


# acks_late + reject_on_worker_lost (settings): a killed worker's message goes back to the broker.
# Idempotent: the entry is claimed by a conditional UPDATE; a second run finds it not due. Prefork
# workers enforce the hard time limit, which is shorter than the claim; in every pool, outbound HTTP
# has its own deadline (at most 35 s a request) and a result recorded after a lost claim is dropped.
@shared_task(acks_late=True, ignore_result=True, time_limit=settings.OUTBOX_TASK_TIME_LIMIT)
def process_outbox_entry_task(entry_id: int) -> str:
    return outbox_process(entry_id=entry_id)


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

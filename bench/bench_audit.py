"""The audit trail's cost where it records: a rep's status change (lead_set_status: the lead's save and
its timeline event) with django-auditlog writing its entry (it reads the row before the save, then
inserts the masked diff) against the same change with auditlog off (its own disable_auditlog()), and
a staff read of the lead list over the API with its access-log row against the same read with the
signal disconnected. Rounds interleave the two so the machine's load falls on both alike."""

import os
import statistics

from auditlog.context import disable_auditlog, set_actor
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from bench.figures import Figure
from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from leadcrm.audit.models import AccessLogEntry
from leadcrm.audit.receivers import record_read
from leads.models import Lead
from leads.services import lead_set_status
from leads.signals import personal_data_read

CHANGES = int(os.environ.get("BENCH_AUDIT_CHANGES", "500"))
READS = int(os.environ.get("BENCH_AUDIT_READS", "200"))
ROUNDS = 5


def _leads(campaign: Campaign, count: int) -> list[Lead]:
    now = timezone.now()
    Lead.objects.bulk_create(
        Lead(
            door="api",
            campaign=campaign,
            offer=campaign.offer,
            traffic_source=campaign.traffic_source,
            email=f"audit{index}@example.com",
            first_name="Jo",
            country="US",
            lead_type="hard",
            validity="valid",
            qualification="qualified",
            score=50,
            created_at=now,
        )
        for index in range(count)
    )
    return list(Lead.objects.filter(email__startswith="audit").order_by("pk"))


def run(timed) -> list[Figure]:
    source = TrafficSource.objects.create(name="Audit bench source", kind="push")
    offer = Offer.objects.create(advertiser=Advertiser.objects.create(name="Audit bench adv"), name="Audit offer")
    campaign = Campaign.objects.create(name="Audit bench", slug="audit-bench", traffic_source=source, offer=offer)
    manager = User.objects.create_user("audit-bench-manager", is_staff=True)
    manager.groups.add(Group.objects.get(name="Managers"))
    leads = _leads(campaign, 2 * CHANGES * ROUNDS)
    per_round = 2 * CHANGES

    recorded, unrecorded = [], []
    for round_number in range(ROUNDS):
        batch = leads[round_number * per_round : (round_number + 1) * per_round]
        with set_actor(manager):
            recorded.append(
                timed(lambda i, batch=batch: lead_set_status(lead=batch[i], status="contacted", actor=manager), CHANGES)
            )
        with disable_auditlog():
            unrecorded.append(
                timed(
                    lambda i, batch=batch: lead_set_status(lead=batch[CHANGES + i], status="contacted", actor=manager),
                    CHANGES,
                )
            )
    entries = LogEntry.objects.filter(actor=manager).count()
    assert entries == CHANGES * ROUNDS, f"{entries} audit entries for {CHANGES * ROUNDS} recorded changes"
    change, change_floor = statistics.median(recorded), statistics.median(unrecorded)

    client = APIClient()
    client.force_login(manager)
    logged, unlogged = [], []

    def reads() -> float:
        cache.delete(f"throttle:user:{manager.pk}")  # a staff user's 600 a minute is not what is measured
        return timed(lambda i: client.get("/api/v1/leads/", {"page_size": 50}), READS)

    for _ in range(ROUNDS):
        logged.append(reads())
        personal_data_read.disconnect(dispatch_uid="audit-record-read")
        try:
            unlogged.append(reads())
        finally:
            personal_data_read.connect(record_read, dispatch_uid="audit-record-read")
    assert AccessLogEntry.objects.filter(user=manager).count() == READS * ROUNDS
    read, read_floor = statistics.median(logged), statistics.median(unlogged)

    print(
        f"audit: {change:,.0f} status changes/s recorded vs {change_floor:,.0f}/s with auditlog off "
        f"(ratio {change / change_floor:.2f}); staff API list of 50 leads {read:,.0f}/s with its access-log row vs "
        f"{read_floor:,.0f}/s without (ratio {read / read_floor:.2f}); median of {ROUNDS} interleaved rounds"
    )
    return [
        Figure("Lead status change with its audit entry", change, "changes/s", change_floor, "auditlog off", 0.6),
        Figure("Staff API lead list with its access-log row", read, "reads/s", read_floor, "not logged", 0.8),
    ]

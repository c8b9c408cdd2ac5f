"""Who works a lead: round-robin assignment, claims, reassignment and speed-to-lead escalation."""

import datetime
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from leadcrm.errors import Conflict, InvalidInput

from ..models import AUTO_ASSIGNABLE, UNASSIGNED_QUEUE, Lead, LeadEvent, LeadStatus, OutboxEntry, SalesRepProfile
from .locking import lock_until_commit

SALES_GROUP = "Sales"


def sales_reps() -> QuerySet[User]:
    """Active staff users in the Sales group."""
    return get_user_model().objects.filter(is_active=True, is_staff=True, groups__name=SALES_GROUP)


def _eligible_profiles(lead: Lead, exclude_user_id: int | None = None) -> list[SalesRepProfile]:
    # One assignment at a time: a row lock with ORDER BY would hand a waiting transaction the
    # rows in the order it read before the lock, so two leads could go to the same rep.
    lock_until_commit(("lead-assignment",))
    reps = sales_reps() if exclude_user_id is None else sales_reps().exclude(pk=exclude_user_id)
    users = list(reps.values_list("pk", flat=True))
    SalesRepProfile.objects.bulk_create([SalesRepProfile(user_id=user_id) for user_id in users], ignore_conflicts=True)
    profiles = (
        SalesRepProfile.objects.filter(user_id__in=users, is_available=True)
        .order_by(F("last_assigned_at").asc(nulls_first=True), "user_id")
        .prefetch_related("offers")
    )
    eligible: list[SalesRepProfile] = []
    for profile in profiles:
        if profile.countries and lead.country not in profile.countries:
            continue
        offer_ids = {offer.pk for offer in profile.offers.all()}
        if offer_ids and lead.offer_id not in offer_ids:
            continue
        eligible.append(profile)
    return eligible


def _assign(lead: Lead, user: User, *, actor: User | None, how: str) -> Lead:
    now = timezone.now()
    previous = lead.assigned_to
    lead.assigned_to, lead.assigned_at = user, now
    lead.save(update_fields=["assigned_to", "assigned_at", "updated_at"])
    SalesRepProfile.objects.filter(user=user).update(last_assigned_at=now)
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.ASSIGNED,
        actor=actor,
        data={"to": user.get_username(), "from": previous.get_username() if previous else None, "how": how},
    )
    return lead


@transaction.atomic
def lead_auto_assign(*, lead_id: int) -> Lead | None:
    """Give a qualified hard lead to the next available rep in turn; no-op if already assigned."""
    lead = Lead.objects.select_for_update(of=("self",)).select_related("assigned_to").get(pk=lead_id)
    if lead.assigned_to_id or not lead.is_auto_assignable:
        return lead
    profiles = _eligible_profiles(lead)
    if not profiles:
        return lead  # stays in the unassigned queue, where reps can claim it
    return _assign(lead, profiles[0].user, actor=None, how="round robin")


def assign_outbox_handler(entry: OutboxEntry) -> None:
    lead_auto_assign(lead_id=entry.lead_id)


@transaction.atomic
def lead_assign(*, lead: Lead, to_user: User | None, actor: User | None) -> Lead:
    """A manager gives the lead to a rep (or takes it back when to_user is None)."""
    lead = Lead.objects.select_for_update(of=("self",)).select_related("assigned_to").get(pk=lead.pk)
    if to_user is None:
        if lead.assigned_to is not None:
            previous = lead.assigned_to.get_username()
            lead.assigned_to, lead.assigned_at = None, None
            lead.save(update_fields=["assigned_to", "assigned_at", "updated_at"])
            LeadEvent.objects.create(
                lead=lead,
                kind=LeadEvent.Kind.ASSIGNED,
                actor=actor,
                data={"to": None, "from": previous, "how": "unassigned"},
            )
        return lead
    if not sales_reps().filter(pk=to_user.pk).exists():
        raise InvalidInput(f"{to_user.get_username()} is not an active sales rep.")
    if lead.assigned_to_id == to_user.pk:
        return lead
    return _assign(lead, to_user, actor=actor, how="by hand")


@transaction.atomic
def lead_claim(*, lead: Lead, user: User) -> Lead:
    """A rep takes an unassigned lead from the queue; first come, first served."""
    if not sales_reps().filter(pk=user.pk).exists():
        raise InvalidInput(f"{user.get_username()} is not an active sales rep; a manager assigns leads instead.")
    taken = Lead.objects.filter(UNASSIGNED_QUEUE, pk=lead.pk).update(assigned_to=user, assigned_at=timezone.now())
    if not taken:
        holder = Lead.objects.filter(pk=lead.pk).values_list("assigned_to__username", flat=True).first()
        if holder:
            raise Conflict(f"{lead} is already assigned to {holder}.")
        raise Conflict(f"{lead} is not in the queue (closed, a test, a duplicate or invalid).")
    lead.refresh_from_db()
    SalesRepProfile.objects.filter(user=user).update(last_assigned_at=lead.assigned_at)
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.ASSIGNED,
        actor=user,
        data={"to": user.get_username(), "from": None, "how": "claimed"},
    )
    return lead


def _working_hours() -> tuple[datetime.time, datetime.time]:
    start, end = settings.WORKING_HOURS.split("-")
    return datetime.time.fromisoformat(start.strip()), datetime.time.fromisoformat(end.strip())


def working_minutes_between(start: datetime.datetime, end: datetime.datetime) -> float:
    """Minutes of working time (WORKING_HOURS on WORKING_DAYS, in TIME_ZONE) between two instants."""
    if end <= start:
        return 0.0
    opens, closes = _working_hours()
    start, end = timezone.localtime(start), timezone.localtime(end)
    total = 0.0
    day = start.date()
    while day <= end.date():
        if day.isoweekday() in settings.WORKING_DAYS:
            tz = start.tzinfo
            day_open = datetime.datetime.combine(day, opens, tz)
            day_close = datetime.datetime.combine(day, closes, tz)
            overlap = (min(end, day_close) - max(start, day_open)).total_seconds()
            total += max(overlap, 0) / 60
        day += timedelta(days=1)
    return total


def leads_escalate_uncontacted(*, now: datetime.datetime | None = None) -> int:
    """Flag qualified leads nobody contacted within SPEED_TO_LEAD_MINUTES of working time.

    Returns how many were escalated. With LEAD_ESCALATION_REASSIGN the lead also moves to the
    next rep in turn.
    """
    now = now or timezone.now()
    limit = settings.SPEED_TO_LEAD_MINUTES
    # Working minutes never exceed wall-clock minutes, so this bound only drops leads too young.
    candidates = Lead.objects.filter(
        AUTO_ASSIGNABLE,
        status=LeadStatus.NEW,
        first_contacted_at__isnull=True,
        escalated_at__isnull=True,
        created_at__lte=now - timedelta(minutes=limit),
    ).only("pk", "created_at", "assigned_at")
    escalated = 0
    for candidate in candidates.iterator(chunk_size=500):
        clock_start = candidate.assigned_at or candidate.created_at
        if working_minutes_between(clock_start, now) >= limit:
            escalated += _escalate(candidate.pk, now, limit)
    return escalated


@transaction.atomic
def _escalate(lead_id: int, now: datetime.datetime, limit: int) -> int:
    lead = Lead.objects.select_for_update(of=("self",)).select_related("assigned_to").get(pk=lead_id)
    if lead.escalated_at or lead.first_contacted_at:
        return 0
    lead.escalated_at = now
    lead.save(update_fields=["escalated_at", "updated_at"])
    holder = lead.assigned_to.get_username() if lead.assigned_to else None
    LeadEvent.objects.create(
        lead=lead,
        kind=LeadEvent.Kind.ESCALATED,
        data={"reason": f"not contacted within {limit} working minutes", "assigned_to": holder},
    )
    if settings.LEAD_ESCALATION_REASSIGN:
        profiles = _eligible_profiles(lead, exclude_user_id=lead.assigned_to_id)
        if profiles:
            _assign(lead, profiles[0].user, actor=None, how="escalation")
    return 1

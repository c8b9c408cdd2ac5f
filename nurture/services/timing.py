"""When a lead may be emailed: its local time zone, quiet hours and the frequency cap."""

import functools
from datetime import datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from django.conf import settings


@functools.cache
def _zones_by_country() -> dict[str, str]:
    """Country -> its first listed zone, from the IANA table the tzdata package ships."""
    zones = {}
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text()
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            zones.setdefault(country, zone)
    return zones


def lead_zone(country: str) -> ZoneInfo:
    return ZoneInfo(_zones_by_country().get((country or "").upper(), settings.NURTURE_DEFAULT_TIME_ZONE))


def _quiet_window() -> tuple[time, time]:
    start, end = settings.NURTURE_QUIET_HOURS.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def next_send_time(*, country: str, now: datetime, last_sent_at: datetime | None) -> datetime:
    """`now` if the lead may get an email now, else the first moment it may (quiet hours, cap)."""
    candidate = now
    if last_sent_at is not None:
        candidate = max(candidate, last_sent_at + timedelta(hours=settings.NURTURE_EMAIL_MIN_HOURS))
    zone = lead_zone(country)
    local = candidate.astimezone(zone)
    quiet_start, quiet_end = _quiet_window()
    clock = local.time()
    in_quiet = (
        (quiet_start <= clock or clock < quiet_end) if quiet_start > quiet_end else quiet_start <= clock < quiet_end
    )
    if in_quiet:
        day = local.date() if clock < quiet_end else local.date() + timedelta(days=1)
        local = datetime.combine(day, quiet_end, tzinfo=zone)
    return local.astimezone(ZoneInfo("UTC"))


def wait_until(*, now: datetime, country: str, weekday: int | None, at: time | None) -> datetime:
    """The next moment (after now) on that ISO weekday and/or at that local time."""
    zone = lead_zone(country)
    local = now.astimezone(zone)
    target_time = at or time(9, 0)
    for days in range(0, 8):
        day = local.date() + timedelta(days=days)
        if weekday is not None and day.isoweekday() != weekday:
            continue
        moment = datetime.combine(day, target_time, tzinfo=zone)
        if moment > local:
            return moment.astimezone(ZoneInfo("UTC"))
    return (local + timedelta(days=7)).astimezone(ZoneInfo("UTC"))

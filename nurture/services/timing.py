"""When a lead may be emailed: its local time zone, quiet hours and the frequency cap."""

import functools
from datetime import datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import phonenumbers
from django.conf import settings
from phonenumbers.timezone import time_zones_for_number as phonenumber_time_zones

# The zone most of a country's people live in, for the countries whose IANA table lists more than one
# (zone.tab lists them geographically: Canada's first is St John's, Australia's Lord Howe Island).
# A test checks that every multi-zone country of the shipped table is here.
MOST_POPULOUS_ZONE = {
    "AQ": "Antarctica/McMurdo",
    "AR": "America/Argentina/Buenos_Aires",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CD": "Africa/Kinshasa",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "CY": "Asia/Nicosia",
    "DE": "Europe/Berlin",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "FM": "Pacific/Pohnpei",
    "GL": "America/Nuuk",
    "ID": "Asia/Jakarta",
    "KI": "Pacific/Tarawa",
    "KZ": "Asia/Almaty",
    "MH": "Pacific/Majuro",
    "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "NZ": "Pacific/Auckland",
    "PF": "Pacific/Tahiti",
    "PG": "Pacific/Port_Moresby",
    "PS": "Asia/Hebron",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "UM": "Pacific/Midway",
    "US": "America/New_York",
    "UZ": "Asia/Tashkent",
}


@functools.cache
def zones_by_country() -> dict[str, list[str]]:
    """Country -> its zones, from the IANA table the tzdata package ships."""
    zones: dict[str, list[str]] = {}
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text()
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            zones.setdefault(country, []).append(zone)
    return zones


@functools.lru_cache(maxsize=4096)
def _phone_zone(phone: str) -> str | None:
    """The zone of the phone's area, when its number plan ties it to exactly one zone."""
    if not phone.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return None
    zones = phonenumber_time_zones(number)
    return zones[0] if len(zones) == 1 and zones[0] != phonenumbers.timezone.UNKNOWN_TIMEZONE else None


def _country_zone(country: str) -> str | None:
    country = (country or "").upper()
    zones = zones_by_country().get(country)
    if not zones:
        return None
    return MOST_POPULOUS_ZONE.get(country, zones[0])


def lead_zone(country: str, phone: str = "") -> ZoneInfo:
    """The lead's zone: its phone number's area, else its country's most populous zone, else the default."""
    name = _phone_zone(phone or "") or _country_zone(country) or settings.NURTURE_DEFAULT_TIME_ZONE
    return ZoneInfo(name)


def _quiet_window() -> tuple[time, time]:
    start, end = settings.NURTURE_QUIET_HOURS.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def next_send_time(*, country: str, phone: str = "", now: datetime, last_sent_at: datetime | None) -> datetime:
    """`now` if the lead may get an email now, else the first moment it may (quiet hours, cap)."""
    candidate = now
    if last_sent_at is not None:
        candidate = max(candidate, last_sent_at + timedelta(hours=settings.NURTURE_EMAIL_MIN_HOURS))
    zone = lead_zone(country, phone)
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


UTC = ZoneInfo("UTC")


def wait_until(*, now: datetime, country: str, phone: str = "", weekday: int | None, at: time | None) -> datetime:
    """The next moment (after now) on that ISO weekday and/or at that local time."""
    zone = lead_zone(country, phone)
    local = now.astimezone(zone)
    target_time = at or time(9, 0)
    for days in range(0, 8):
        day = local.date() + timedelta(days=days)
        if weekday is not None and day.isoweekday() != weekday:
            continue
        # Compared as instants: two times in one zone compare by the clock, which on the night the
        # clocks go back takes 01:45 (its first pass) for later than 01:30 (its second). That night
        # the time comes twice (fold 0 and 1); the next of the two that is still ahead is taken.
        ahead = [
            moment
            for fold in (0, 1)
            if (moment := datetime.combine(day, target_time, tzinfo=zone).replace(fold=fold).astimezone(UTC)) > now
        ]
        if ahead:
            return min(ahead)
    return (local + timedelta(days=7)).astimezone(UTC)

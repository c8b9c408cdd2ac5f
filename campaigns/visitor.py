"""Who is visiting: IP, country, device, OS and browser, read defensively from untrusted input."""

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

import pycountry
import ua_parser
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# Long user agents are either garbage or an attack on the regex engine; real ones are < 512.
MAX_USER_AGENT_LENGTH = 1000


class DeviceType(models.TextChoices):
    DESKTOP = "desktop", "Desktop"
    MOBILE = "mobile", "Mobile"
    TABLET = "tablet", "Tablet"


class OperatingSystem(models.TextChoices):
    ANDROID = "android", "Android"
    IOS = "ios", "iOS"
    WINDOWS = "windows", "Windows"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"
    CHROMEOS = "chromeos", "ChromeOS"
    OTHER = "other", "Other"


class ConnectionType(models.TextChoices):
    CELLULAR = "cellular", "Cellular (mobile carrier)"
    WIFI = "wifi", "Wi-Fi"
    BROADBAND = "broadband", "Broadband / cable"


_OS_FAMILIES = {
    "android": OperatingSystem.ANDROID,
    "ios": OperatingSystem.IOS,
    "ipados": OperatingSystem.IOS,
    "windows": OperatingSystem.WINDOWS,
    "mac os x": OperatingSystem.MACOS,
    "macos": OperatingSystem.MACOS,
    "linux": OperatingSystem.LINUX,
    "ubuntu": OperatingSystem.LINUX,
    "fedora": OperatingSystem.LINUX,
    "debian": OperatingSystem.LINUX,
    "chrome os": OperatingSystem.CHROMEOS,
}
_TABLET_FAMILIES = ("ipad", "kindle", "galaxy tab", "nexus 7", "nexus 9", "nexus 10")
_MOBILE_OS = {OperatingSystem.ANDROID, OperatingSystem.IOS}


@dataclass(frozen=True)
class UserAgentInfo:
    device_type: str  # a DeviceType value, or "" when unknown
    os: str  # an OperatingSystem value, or "" when unknown
    browser: str
    is_bot: bool


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str) -> UserAgentInfo:
    user_agent = (user_agent or "")[:MAX_USER_AGENT_LENGTH]
    if not user_agent.strip():
        return UserAgentInfo(device_type="", os="", browser="", is_bot=False)
    result = ua_parser.parse(user_agent)
    device_family = (result.device.family if result.device else "") or ""
    os_family = (result.os.family if result.os else "") or ""
    browser = (result.user_agent.family if result.user_agent else "") or ""
    is_bot = device_family == "Spider"
    os = _OS_FAMILIES.get(os_family.lower(), OperatingSystem.OTHER if os_family else "")
    if os_family.lower().startswith("windows"):
        os = OperatingSystem.WINDOWS

    if is_bot:
        device_type = ""
    elif any(name in device_family.lower() for name in _TABLET_FAMILIES) or (
        os == OperatingSystem.ANDROID and "mobile" not in user_agent.lower()
    ):
        device_type = DeviceType.TABLET
    elif os in _MOBILE_OS or "mobi" in user_agent.lower():
        device_type = DeviceType.MOBILE
    elif os:
        device_type = DeviceType.DESKTOP
    else:
        device_type = ""
    return UserAgentInfo(device_type=str(device_type), os=str(os), browser=browser[:64], is_bot=is_bot)


# Two-letter codes that are not ISO 3166 alpha-2 but are widely written for a country: the UK's own
# (ISO reserves it for the UK) and the EU's for Greece.
COUNTRY_CODE_ALIASES = {"UK": "GB", "EL": "GR"}


def normalise_country(value: str | None) -> str:
    """ISO 3166 alpha-2 code in upper case for a code (alpha-2 or alpha-3, or UK and EL), or "" if unknown."""
    value = (value or "").strip()
    if not value or len(value) > 3:
        return ""
    if len(value) == 2:
        code = value.upper()
        country = pycountry.countries.get(alpha_2=COUNTRY_CODE_ALIASES.get(code, code))
    elif len(value) == 3:
        country = pycountry.countries.get(alpha_3=value.upper())
    else:
        country = None
    return country.alpha_2 if country else ""


def validate_country_codes(codes: list[str]) -> None:
    unknown = [code for code in codes if normalise_country(code) != code]
    if unknown:
        raise ValidationError(
            "Not ISO 3166 alpha-2 country codes: %(codes)s.",
            params={"codes": ", ".join(unknown)},
            code="invalid_country",
        )


def client_ip(request) -> str | None:
    """The visitor's IP, from the trusted proxy header when one is configured."""
    raw = ""
    if settings.CLIENT_IP_HEADER:
        header = request.headers.get(settings.CLIENT_IP_HEADER, "")
        # Our proxy appends the address it saw; anything before it came from the client and can be forged.
        raw = header.split(",")[-1].strip()
    raw = raw or request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw[:64]))
    except ValueError:
        return None


def request_country(request, fallback: str = "") -> str:
    """Country from the CDN/proxy header, else the given fallback (e.g. a `country` parameter)."""
    from_header = ""
    if settings.COUNTRY_HEADER:
        from_header = normalise_country(request.headers.get(settings.COUNTRY_HEADER, ""))
    return from_header or normalise_country(fallback)

"""Step 3 of the pipeline: is this a real, reachable person? Every reason is kept.

Invalid reasons make a lead worthless (no way to reach them, a bot, no consent); suspect
reasons make it doubtful (throw-away inbox, too fast, too many from one IP, off-target).
"""

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from campaigns.visitor import parse_user_agent
from leadcrm.config_cache import cached

from ..models import BlockedEmailDomain, Lead, Validity

DISPOSABLE_DOMAINS_FILE = Path(__file__).resolve().parent.parent / "data" / "disposable_email_domains.txt"
# ua-parser knows crawlers; these are the scripts and headless browsers that fill forms.
_AUTOMATION_AGENTS = re.compile(
    r"headless|phantomjs|selenium|puppeteer|playwright|python-requests|python-urllib|aiohttp|curl/|wget/"
    r"|scrapy|go-http-client|okhttp|java/|libwww|httpclient|\bbot\b|crawler|spider",
    re.IGNORECASE,
)

INVALID_REASONS = ("no_contact", "invalid_email", "invalid_phone", "missing_field", "honeypot", "bot", "consent")


def email_error(email: str) -> str:
    """Why an email cannot be right (syntax, special-use domains), or "". No DNS lookups."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return ""


@lru_cache(maxsize=1)
def _shipped_disposable_domains() -> frozenset[str]:
    lines = DISPOSABLE_DOMAINS_FILE.read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _domain_and_parents(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[index:]) for index in range(len(parts) - 1)]


def is_disposable_email(email: str) -> bool:
    domain = email.rpartition("@")[2].lower()
    if not domain:
        return False
    candidates = _domain_and_parents(domain)
    if _shipped_disposable_domains().intersection(candidates):
        return True
    return bool(_blocked_domains().intersection(candidates))


def _blocked_domains() -> frozenset[str]:
    """The domains staff blocked, per process until the list changes."""
    return cached(
        "blocked-email-domains", "", lambda: frozenset(BlockedEmailDomain.objects.values_list("domain", flat=True))
    )


def is_automation_agent(user_agent: str) -> bool:
    return bool(user_agent) and (parse_user_agent(user_agent).is_bot or bool(_AUTOMATION_AGENTS.search(user_agent)))


def validity_from(reasons: list[str]) -> str:
    if any(reason.split(":")[0] in INVALID_REASONS for reason in reasons):
        return Validity.INVALID
    return Validity.SUSPECT if reasons else Validity.VALID


def validate_lead(
    *,
    lead: Lead,
    phone_ok: bool,
    required_fields: list[str],
    honeypot: str,
    form_seconds: float | None,
    consent_required: bool,
) -> list[str]:
    """Reasons, in a stable order, that the lead is invalid or suspect; empty when valid."""
    reasons = []
    if not lead.email and not lead.phone:
        reasons.append("no_contact: neither email nor phone")
    if lead.email:
        error = email_error(lead.email)
        if error:
            reasons.append(f"invalid_email: {error}")
        elif is_disposable_email(lead.email):
            reasons.append("disposable_email: a throw-away inbox domain")
    if lead.phone and not phone_ok:
        reasons.append(f"invalid_phone: not a valid number for {lead.country or 'an unknown country'}")
    for name in required_fields:
        value = getattr(lead, name, "")
        if value in ("", None):
            reasons.append(f"missing_field: {name}")
    if honeypot:
        reasons.append("honeypot: the hidden field was filled")
    if is_automation_agent(lead.user_agent):
        reasons.append("bot: automated user agent")
    if consent_required and not lead.consent:
        reasons.append("consent: required consent was not given")
    if form_seconds is not None and form_seconds < settings.LEAD_MIN_FORM_SECONDS:
        reasons.append(f"too_fast: sent {max(form_seconds, 0):.1f}s after the form opened")
    if lead.ip:
        since = timezone.now() - timedelta(hours=1)
        recent = Lead.objects.filter(ip=lead.ip, created_at__gte=since, is_test=lead.is_test).count()
        if recent >= settings.LEAD_MAX_PER_IP_PER_HOUR:
            reasons.append(f"ip_velocity: {recent} leads from this IP in the last hour")
    reasons.extend(lead.campaign.targeting_mismatches(country=lead.country, device_type=lead.device_type, os=lead.os))
    return reasons

"""Step 3 of the pipeline: is this a real, reachable person? Every reason is kept.

Invalid reasons make a lead worthless (no way to reach them, a bot, no consent); suspect
reasons make it doubtful (throw-away inbox, too fast, too many from one IP, off-target).
"""

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import regex  # Unicode script properties, which the re module lacks
from django.conf import settings
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from campaigns.visitor import parse_user_agent
from leadcrm.config_cache import cached

from ..models import BlockedEmailDomain, Lead, Validity
from .normalisation import normalise_email

DISPOSABLE_DOMAINS_FILE = Path(__file__).resolve().parent.parent / "data" / "disposable_email_domains.txt"
# ua-parser knows crawlers; these are the scripts and headless browsers that fill forms.
_AUTOMATION_AGENTS = re.compile(
    r"headless|phantomjs|selenium|puppeteer|playwright|python-requests|python-urllib|aiohttp|curl/|wget/"
    r"|scrapy|go-http-client|okhttp|java/|libwww|httpclient|\bbot\b|crawler|spider",
    re.IGNORECASE,
)

INVALID_REASONS = ("no_contact", "invalid_email", "invalid_phone", "missing_field", "honeypot", "bot", "consent")


# Scripts whose letters are told apart in an address. Letters of other scripts are not judged.
EMAIL_SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Georgian", "Cherokee", "Hebrew", "Arabic", "Syriac", "Thaana",
    "Nko", "Ethiopic", "Tifinagh", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu",
    "Kannada", "Malayalam", "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Khmer", "Mongolian",
    "Canadian_Aboriginal", "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo",
)  # fmt: skip
# Scripts one word may mix (Unicode TR39's "highly restrictive" level): Japanese, Chinese and
# Korean writing, each with Latin. Any other mix is how look-alike addresses are made.
EMAIL_SCRIPT_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)
_SCRIPT_PATTERNS = {name: regex.compile(rf"\p{{Script_Extensions={name}}}") for name in EMAIL_SCRIPTS}


@lru_cache(maxsize=4096)
def _scripts_of(letter: str) -> frozenset[str]:
    return frozenset(name for name, pattern in _SCRIPT_PATTERNS.items() if pattern.match(letter))


def _mixed_scripts_error(part: str, label: str) -> str:
    """Why one label mixes the letters of scripts no language mixes, or "" (digits and marks have none)."""
    if label.isascii():
        return ""
    letters = [(char, _scripts_of(char)) for char in label if unicodedata.category(char).startswith("L")]
    letters = [(char, scripts) for char, scripts in letters if scripts]
    if not letters:
        return ""
    common, odd = letters[0][1], None
    for letter in letters:  # a letter may belong to more than one script (Script_Extensions)
        if not common & letter[1]:
            odd = letter
            break
        common &= letter[1]
    if odd is None or any(all(scripts & mix for _, scripts in letters) for mix in EMAIL_SCRIPT_MIXES):
        return ""
    char, scripts = odd
    return (
        f'The {part} "{label}" mixes {min(common)} and {min(scripts)} letters '
        f"(U+{ord(char):04X} {unicodedata.name(char, '')}), so it can pass for another address."
    )


def email_error(email: str, *, checked: ValidatedEmail | None = None) -> str:
    """Why an email cannot be right, or "". No DNS lookups. `checked`: what validate_email already
    made of this very address, if the caller has it.

    Syntax, special-use domains and invisible characters (zero-width and bidi controls: the email
    validator's "unsafe characters"), and words mixing the letters of scripts, like a Cyrillic "a"
    (U+0430) in "paypal": an address that looks like someone else's.
    """
    if checked is None:
        result = _checked_email(email)
        if isinstance(result, str):
            return result
        checked = result
    for word in checked.local_part.split("."):
        if problem := _mixed_scripts_error("part before the @-sign", word):
            return problem
    for label in checked.domain.split("."):  # Unicode labels, also when sent as xn--
        if problem := _mixed_scripts_error("domain label", label):
            return problem
    return ""


def _email_as_sent(lead: Lead) -> str:
    """The address before parse_submission dropped what does not print (a zero-width space, a bidi
    control), so such characters are judged rather than hidden; lead.email keeps the cleaned one."""
    sent = lead.raw_data.get("email") if isinstance(lead.raw_data, dict) else None
    return normalise_email(sent) if isinstance(sent, str) else lead.email


# A landing form checks the address as it will be stored, and the pipeline then judges that same
# address: the second check is a lookup. Kept small, as it holds the addresses of the last few posts.
@lru_cache(maxsize=16)
def _checked_email(email: str) -> ValidatedEmail | str:
    """What validate_email makes of the address (no DNS lookups), or why it refuses it."""
    try:
        return validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)


def _email_reasons(lead: Lead) -> list[str]:
    checked = _checked_email(lead.email)
    if isinstance(checked, str):
        return [f"invalid_email: {checked}"]
    sent = _email_as_sent(lead)
    # Usually sent as stored: the check above is the one email_error would repeat.
    if disguise := email_error(sent, checked=checked if sent == lead.email else None):
        # Well formed once cleaned, but sent with invisible characters or look-alike letters:
        # it may be someone else's address in disguise. Suspect: kept, not sold or emailed blind.
        return [f"disguised_email: {disguise}"]
    if is_disposable_email(lead.email):
        return ["disposable_email: a throw-away inbox domain"]
    return []


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
    leads_from_ip: int,
    from_browser: bool = False,
    replayed_form: bool = False,
) -> list[str]:
    """Reasons, in a stable order, that the lead is invalid or suspect; empty when valid.
    `leads_from_ip`: leads stored from the lead's IP address in the last hour, counted up to
    LEAD_MAX_PER_IP_PER_HOUR (dedupe.contact_lookups). `from_browser`: sent by our own form (a
    landing page or quiz), where every browser names itself."""
    reasons = []
    if not lead.email and not lead.phone:
        reasons.append("no_contact: neither email nor phone")
    if lead.email:
        reasons += _email_reasons(lead)
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
    elif from_browser and not lead.user_agent.strip():
        reasons.append("no_user_agent: the form was sent without a user agent, as scripts do")
    if consent_required and not lead.consent:
        reasons.append("consent: required consent was not given")
    if form_seconds is not None and form_seconds < settings.LEAD_MIN_FORM_SECONDS:
        reasons.append(f"too_fast: sent {max(form_seconds, 0):.1f}s after the form opened")
    if replayed_form:
        reasons.append("replayed_form: the form, as shown once, was already sent with another lead")
    if lead.ip and leads_from_ip >= settings.LEAD_MAX_PER_IP_PER_HOUR:
        reasons.append(f"ip_velocity: {settings.LEAD_MAX_PER_IP_PER_HOUR} or more leads from this IP in the last hour")
    reasons.extend(lead.campaign.targeting_mismatches(country=lead.country, device_type=lead.device_type, os=lead.os))
    return reasons

"""The lead page's consent certificates: ours, with whether it still verifies, and the supplier's."""

from urllib.parse import urlsplit

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import ConsentCertificate, Lead
from ..services.consent import consent_certificate_url, consent_certificate_verify


def _when(moment) -> str:
    # To the second, with its zone: evidence of how long the visitor took is read in seconds.
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "unknown"


def consent_certificate_html(lead: Lead) -> SafeString | str:
    """Our certificate in a small table (two queries: the certificate, then its lead for the hash)."""
    if lead.consent_certificate_id is None:
        return "None: only landing-page and quiz leads get one."
    certificate = ConsentCertificate.objects.filter(public_id=lead.consent_certificate_id).first()
    if certificate is None:  # PROTECT keeps it; a missing row is itself worth saying
        return "Missing: the certificate this lead names is not stored."
    verification = consent_certificate_verify(certificate)
    if verification.matches:
        verdict = format_html("<strong>{}</strong>: it still matches its SHA-256.", "Verified")
    else:
        verdict = format_html('<strong class="lc-error">Not verified</strong>: {}', " ".join(verification.problems))
    visitor = (
        f"erased on request {_when(certificate.erased_at)}"
        if certificate.erased_at
        else f"{certificate.ip or '—'}, {certificate.user_agent or '—'}"
    )
    return format_html(
        '<p id="consent-verification">{}</p><table class="lc-table compact">'
        '<tr><th>Certificate</th><td><a href="{}">{}</a></td></tr>'
        "<tr><th>Page</th><td>{} (/l/{}/), consent version {}</td></tr>"
        "<tr><th>Consent given</th><td>{}</td></tr>"
        "<tr><th>Form shown</th><td>{}</td></tr>"
        "<tr><th>Submitted</th><td>{}</td></tr>"
        "<tr><th>Fields sent</th><td>{}</td></tr>"
        "<tr><th>Visitor</th><td>{}</td></tr>"
        "<tr><th>SHA-256</th><td><code>{}</code></td></tr></table>",
        verdict,
        consent_certificate_url(certificate.public_id),
        certificate.public_id,
        certificate.page_name,
        certificate.page_slug,
        certificate.consent_version or "—",
        "Yes" if certificate.consent_given else "No",
        _when(certificate.form_shown_at),
        _when(certificate.submitted_at),
        ", ".join(certificate.fields_submitted) or "—",
        visitor,
        certificate.sha256,
    )


def third_party_consent_html(lead: Lead) -> SafeString | str:
    """The supplier's TrustedForm or Jornaya certificate: a link when it is an https address."""
    value = lead.third_party_consent_id
    if not value:
        return "—"
    if urlsplit(value).scheme == "https":  # never a javascript: or data: link
        return format_html('<a href="{0}" rel="noopener noreferrer">{0}</a>', value)
    return value

"""The public page of a consent certificate: what a buyer or an auditor may check, without personal data."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .models import ConsentCertificate
from .services.consent import CANONICAL_FORMAT, consent_certificate_verify


@never_cache  # it says whether the certificate matches now, not when a cache kept it
@require_safe
def consent_certificate(request, certificate_id):
    certificate = get_object_or_404(ConsentCertificate, public_id=certificate_id)
    verification = consent_certificate_verify(certificate)
    seconds = None
    if certificate.form_shown_at is not None:
        seconds = max(round((certificate.submitted_at - certificate.form_shown_at).total_seconds()), 0)
    return render(
        request,
        "landing/consent_certificate.html",
        {
            "certificate": certificate,
            "verification": verification,
            "seconds_on_form": seconds,
            "canonical_format": CANONICAL_FORMAT,
        },
    )

"""The Content-Security-Policy header (django-csp), with a nonce in every policy.

django-csp adds the nonce only to pages that read it. Every page gets one here, so a template that
gains an inline script or style later works once it carries the nonce, and the header has the same
shape on every page (leadcrm/tests/test_csp.py checks it page by page).
"""

from csp.middleware import CSPMiddleware
from django.http import HttpRequest


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        str(request.csp_nonce)  # type: ignore[attr-defined]  # drawn now: the policy then names it

"""API request hygiene: a size limit answered with 413, and one log line per request without PII."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .api_errors import error_body

logger = logging.getLogger("leadcrm.api")


class ApiRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.monotonic()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        response: HttpResponse
        if length > settings.API_MAX_BODY_BYTES:
            response = JsonResponse(
                error_body("request_too_large", f"The body is larger than {settings.API_MAX_BODY_BYTES} bytes."),
                status=413,
            )
        else:
            response = self.get_response(request)
        if response.status_code == 404 and not response.get("Content-Type", "").startswith("application/json"):
            # A path no API view matched (e.g. a database id where a UUID belongs): the API's shape, not HTML.
            response = JsonResponse(error_body("not_found", "Not found."), status=404)
        # Who and what, never the body: the body carries personal data.
        key = getattr(request, "api_key", None)
        logger.info(
            "api %s %s status=%s partner=%s key=%s latency_ms=%.0f",
            request.method,
            request.path,
            response.status_code,
            key.partner_id if key else "-",
            key.prefix if key else "-",
            (time.monotonic() - started) * 1000,
        )
        return response

"""One JSON error shape for the whole API: {"error": {"code", "message", "fields"}}."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError, Conflict, InvalidInput, NotFound, Unprocessable

APPLICATION_ERRORS = {
    InvalidInput: (status.HTTP_400_BAD_REQUEST, "invalid"),
    NotFound: (status.HTTP_404_NOT_FOUND, "not_found"),
    Conflict: (status.HTTP_409_CONFLICT, "conflict"),
    Unprocessable: (status.HTTP_422_UNPROCESSABLE_ENTITY, "unprocessable"),
}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        http_status, code = next(
            (value for kind, value in APPLICATION_ERRORS.items() if isinstance(exc, kind)),
            (status.HTTP_400_BAD_REQUEST, "invalid"),
        )
        return Response(error_body(exc.code or code, exc.message, exc.extra), status=http_status)
    if isinstance(exc, DjangoValidationError):  # e.g. a forged pagination cursor reaching a query
        exc = exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling and logging take over
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    if isinstance(exc, exceptions.ValidationError):
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body("invalid", "The request has invalid fields.", fields)
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(codes if isinstance(codes, str) else "error", str(detail))
    return response

"""One JSON error shape for the whole API: {"error": {"code", "message", "fields"}}.

`fields` always maps a field to its messages. Errors inside lists and nested objects are named by
their path, `leads.3` or `answers.colour`, so a client reads every error the same way."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError, Conflict, InvalidInput, NotFound, Unprocessable

APPLICATION_ERRORS = {
    InvalidInput: (status.HTTP_400_BAD_REQUEST, "invalid"),
    NotFound: (status.HTTP_404_NOT_FOUND, "not_found"),
    Conflict: (status.HTTP_409_CONFLICT, "conflict"),
    Unprocessable: (status.HTTP_422_UNPROCESSABLE_ENTITY, "unprocessable"),
}
FieldErrors = dict[str, list[str]]


def field_errors(detail: Any, path: str = "") -> FieldErrors:
    """DRF's errors flattened to {path: messages}: DRF nests a list's or a nested object's errors
    ({"leads": {"0": [...]}}, or a list of dicts for many=True) where the API promises flat names."""
    found: FieldErrors = {}
    if isinstance(detail, dict):
        for name, inner in detail.items():
            for key, messages in field_errors(inner, f"{path}.{name}" if path else str(name)).items():
                found.setdefault(key, []).extend(messages)
    elif isinstance(detail, list | tuple):
        for index, inner in enumerate(detail):
            if isinstance(inner, dict | list | tuple):  # a list's item by its index
                for key, messages in field_errors(inner, f"{path}.{index}" if path else str(index)).items():
                    found.setdefault(key, []).extend(messages)
            else:
                found.setdefault(path or "non_field_errors", []).append(str(inner))
    elif detail is not None:
        found.setdefault(path or "non_field_errors", []).append(str(detail))
    return found


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": field_errors(fields) if fields else {}}}


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="Stable machine-readable code: invalid, not_found, conflict, unprocessable, not_authenticated, "
        "authentication_failed, permission_denied, throttled, parse_error, ..."
    )
    message = serializers.CharField(help_text="What went wrong, in words to show a person.")
    # DRF's metaclass takes declared fields off the class, so this never hides Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field; an item of a list or a nested value is named by its path (`leads.3`). "
        "Empty when the error is not about fields.",
    )


class ErrorSerializer(serializers.Serializer[Any]):
    """Every error answer of the API."""

    error = ErrorBodySerializer()


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
        response.data = error_body("invalid", "The request has invalid fields.", detail)
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(codes if isinstance(codes, str) else "error", str(detail))
    return response

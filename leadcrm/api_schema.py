"""The API schema documents every error an operation can answer, in the one error shape.

drf-spectacular documents what each view declares; the errors come from the machinery around the
view (authentication, permissions, throttling, parsers, the URL's lookups, the body size limit),
so they are added here for every operation, new endpoints included. A view declares an error
itself only to say more about it (409 and 422 of Idempotency-Key)."""

import datetime
from decimal import Decimal
from typing import Any, TypeVar

import pycountry
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework.fields import Field
from rest_framework.permissions import AllowAny

from .api_errors import ErrorSerializer

FieldType = TypeVar("FieldType", bound=Field[Any, Any, Any, Any])

ERROR_DESCRIPTIONS = {
    400: "Invalid request; `fields` says which fields and why.",
    401: "No credentials, or an unknown, expired or revoked key or token.",
    403: "The key lacks the scope (the user the permission), or the IP address is not allowed.",
    404: "Not found, or not yours to see (or a page cursor that is not one we gave out).",
    413: "The body is larger than the API accepts.",
    415: "The body is not in a content type the operation reads.",
    429: "Over the rate limit; retry after the seconds in Retry-After.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}


class ApiSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        error = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for code in self._possible_errors(operation):
            response = responses.setdefault(str(code), {"description": ERROR_DESCRIPTIONS[code], "content": error})
            if code == 429:
                response.setdefault("headers", RETRY_AFTER)
        return operation

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> tuple[Any, bool]:
        """drf-spectacular requires a body when its serializer has a required field; a serializer whose
        fields are each optional but which refuses an empty body says so with `body_required = True`."""
        schema, required = super()._get_request_for_media_type(serializer, direction)
        return schema, required or bool(getattr(serializer, "body_required", False))

    def _possible_errors(self, operation: dict[str, Any]) -> list[int]:
        """The error statuses the view's machinery can answer this operation with."""
        parameters = operation.get("parameters", [])
        locations = {parameter["in"] for parameter in parameters}
        queried = {parameter["name"] for parameter in parameters if parameter["in"] == "query"}
        paginator = getattr(self.view, "paginator", None)
        page = getattr(paginator, "cursor_query_param", None) or getattr(paginator, "page_query_param", None)
        has_body = "requestBody" in operation
        open_to_all = all(isinstance(permission, AllowAny) for permission in self.view.get_permissions())
        codes = []
        if has_body or locations & {"query", "header"}:
            codes.append(400)
        if not open_to_all and self.view.get_authenticators():
            codes += [401, 403]
        if "path" in locations or page in queried:  # an object in the URL, or a page that is not there
            codes.append(404)
        if has_body:
            codes.append(415)
            if self.path.startswith("/api/"):  # leadcrm.middleware.ApiRequestMiddleware's limit
                codes.append(413)
        if self.view.get_throttles():
            codes.append(429)
        return sorted(codes)


def currency_schema(*, blank: bool = False) -> dict[str, Any]:
    """An ISO 4217 code, as `validate_currency` checks it (any letter case)."""
    codes = "|".join(sorted(currency.alpha_3 for currency in pycountry.currencies))
    return {"type": "string", "pattern": f"^({'|' if blank else ''}{codes})$"}


def days_schema(first: datetime.date, last: datetime.date) -> dict[str, Any]:
    """A date between two years' bounds: the pattern keeps the year inside them (JSON Schema has no
    minimum for dates), so only days of those years are described."""
    centuries = range(first.year // 100, last.year // 100 + 1)
    if first.year % 100 == 0 and last.year % 100 == 99:  # whole centuries, as 2000 to 2099
        years = "|".join(f"{century}[0-9][0-9]" for century in centuries)
    else:
        years = "|".join(str(year) for year in range(first.year, last.year + 1))
    return {"type": "string", "format": "date", "pattern": f"^({years})-"}


class DecimalFieldScheme(OpenApiSerializerFieldExtension):
    """What DRF's DecimalField takes: a JSON number or a string of digits within its places and
    bounds. drf-spectacular's own pattern allows "" and "-", which the field refuses."""

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        field = self.target
        if direction != "request":
            return auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        places, whole = field.decimal_places, field.max_whole_digits
        lowest = Decimal(field.min_value) if field.min_value is not None else None
        digits = f"\\d{{1,{whole}}}" if whole else "\\d+"
        fraction = f"(\\.\\d{{1,{places}}})?" if places else ""
        if lowest is not None and lowest > 0 and places and lowest == Decimal(1).scaleb(-places):
            # The smallest step and up: digits that are not all zeros (no lookahead: hypothesis has none).
            more = f"\\d{{0,{whole - 1}}}" if whole else "\\d*"
            tails = "|".join(f"\\d{{{zeros}}}[1-9]\\d{{0,{places - 1 - zeros}}}" for zeros in range(places))
            text = f"^(0*[1-9]{more}{fraction}|0*\\.({tails}))$"
        else:
            text = f"^{'' if lowest is not None and lowest >= 0 else '-?'}{digits}{fraction}$"
        number: dict[str, Any] = {"type": "number"}
        if places is not None:
            number["multipleOf"] = float(Decimal(1).scaleb(-places))
        if lowest is not None:
            number["minimum"] = float(lowest)
        if field.max_value is not None:
            number["maximum"] = float(field.max_value)
        if whole:
            number.setdefault("maximum", 10**whole - 1)
            number.setdefault("minimum", -(10**whole) + 1)
        schema: dict[str, Any] = {"anyOf": [{"type": "string", "pattern": text}, number]}
        if field.allow_null:
            schema["nullable"] = True
        return schema


def shown_as(field_class: type[FieldType], schema: dict[str, Any]) -> type[FieldType]:
    """The field class, shown in the schema as `schema`. A subclass, because DRF copies a serializer's
    declared fields for each instance and the copy would lose an annotation made on the field itself."""
    shown: type[FieldType] = extend_schema_field(schema)(type(field_class.__name__, (field_class,), {}))
    return shown


def number_as_text(max_length: int | None) -> dict[str, Any]:
    """A JSON number that a text field takes as its text (DRF's CharField does, and so does the lead
    contract): any number whose text fits the field."""
    number: dict[str, Any] = {"type": "number"}
    # A float's text takes at most 24 characters and a whole number's as many as its digits: a longer
    # text takes any number a client sends.
    if max_length is not None and max_length < 24:
        number.update(minimum=-(10 ** (max_length - 1) - 1), maximum=10**max_length - 1)
    return number


class CharFieldScheme(OpenApiSerializerFieldExtension):
    """DRF's CharField takes a number as its text; the schema says so (its subclasses, slugs, emails
    and URLs, check the text and stay as drf-spectacular shows them)."""

    target_class = "rest_framework.fields.CharField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        field = self.target
        text: dict[str, Any] = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if direction != "request" or field.min_length or text.get("type") != "string":
            return text
        auto_schema._insert_field_validators(field, text)  # the text's own limits, in its branch
        # DRF refuses NUL, and text that is blank once trimmed unless the field allows blank.
        text.setdefault("pattern", "^[^\\x00]*$" if field.allow_blank else "^[^\\x00]*[^\\s\\x00][^\\x00]*$")
        outer = {key: text.pop(key) for key in ("description", "nullable", "default", "readOnly") if key in text}
        return {"anyOf": [text, number_as_text(field.max_length)], **outer}

"""The one family of errors that services raise; interfaces map them to HTTP or admin messages."""

from typing import Any


class ApplicationError(Exception):
    """A business rule refused the request; the message is safe to show to the user. `code`, when
    given, is the API's machine-readable error code in place of the HTTP status's own."""

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.code = code


class InvalidInput(ApplicationError):
    """The input cannot be used as given (HTTP 400)."""


class NotFound(ApplicationError):
    """The object does not exist or the caller may not see it (HTTP 404)."""


class Conflict(ApplicationError):
    """The request conflicts with the object's current state (HTTP 409)."""


class Unprocessable(ApplicationError):
    """Well-formed but cannot be processed as sent, e.g. a reused idempotency key (HTTP 422)."""

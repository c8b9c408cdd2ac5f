"""auditlog's middleware, which names the staff member behind each change a request makes, with three
changes: the address is the client's as click tracking and the login lockout see it (CLIENT_IP_HEADER),
not a spoofable X-Forwarded-For; the user is the one the API authenticated, known only once DRF has
checked the token, after this middleware ran; and a change a partner makes with an API key (a buyer
reporting a sale) names the partner and the key's prefix, since a partner is no user."""

from typing import Any

from auditlog.middleware import AuditlogMiddleware
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from campaigns.visitor import client_ip


def _authenticated_user(request: HttpRequest) -> User | None:
    # DRF sets request.user on the Django request when it authenticates a token or a session.
    user = getattr(request, "user", None)
    return user if isinstance(user, User) and user.is_authenticated else None


def _partner_key(request: HttpRequest) -> dict[str, Any] | None:
    # ApiKeyAuthentication leaves the key on the Django request (the request log line reads it too).
    key = getattr(request, "api_key", None)
    return {"partner": key.partner_id, "api_key": key.prefix} if key is not None else None


class AuditMiddleware(AuditlogMiddleware):  # type: ignore[misc]  # auditlog ships no types
    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_ip(request)

    def get_extra_data(self, request: HttpRequest) -> dict[str, Any]:
        data: dict[str, Any] = super().get_extra_data(request)
        # auditlog calls a callable when it writes the entry, after the API checked the key.
        data["additional_data"] = lambda: _partner_key(request)
        return data

    @staticmethod
    def _get_actor(request: HttpRequest) -> Any:
        # Looked up when the first change is recorded (auditlog checks isinstance(actor, User), which a
        # lazy object answers for what it wraps), by then the view has authenticated the caller.
        return SimpleLazyObject(lambda: _authenticated_user(request))

"""auditlog's middleware, which names the staff member behind each change a request makes, with two
changes: the address is the client's as click tracking and the login lockout see it (CLIENT_IP_HEADER),
not a spoofable X-Forwarded-For; and the user is the one the API authenticated, known only once DRF has
checked the token, after this middleware ran."""

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


class AuditMiddleware(AuditlogMiddleware):  # type: ignore[misc]  # auditlog ships no types
    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_ip(request)

    @staticmethod
    def _get_actor(request: HttpRequest) -> Any:
        # Looked up when the first change is recorded (auditlog checks isinstance(actor, User), which a
        # lazy object answers for what it wraps), by then the view has authenticated the caller.
        return SimpleLazyObject(lambda: _authenticated_user(request))

from rest_framework import permissions

from campaigns.visitor import client_ip

from ..services.partners import partner_allows_ip
from .authentication import PartnerPrincipal, caller_has_scope


class HasScope(permissions.BasePermission):
    """The view's `required_scopes[method]` (or `required_scope`) must be on the key; IPs must be allowed."""

    message = "This key does not have the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, PartnerPrincipal) and not partner_allows_ip(user.partner, client_ip(request)):
            self.message = "Requests from this IP address are not allowed for this partner."
            return False
        scope = getattr(view, "required_scopes", {}).get(request.method, getattr(view, "required_scope", None))
        return scope is None or caller_has_scope(user, scope)

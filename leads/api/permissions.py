from typing import TYPE_CHECKING

from rest_framework import permissions
from rest_framework.request import Request

from campaigns.visitor import client_ip

from ..services.partners import partner_allows_ip
from .authentication import PartnerPrincipal, caller_has_scope

if TYPE_CHECKING:  # rest_framework.views reads DRF's settings, which import this module
    from rest_framework.views import APIView


class HasScope(permissions.BasePermission):
    """The view's `required_scopes[method]` (or `required_scope`) must be on the key; IPs must be allowed."""

    message = "This key does not have the scope this endpoint needs."

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        if isinstance(user, PartnerPrincipal) and not partner_allows_ip(user.partner, client_ip(request)):
            self.message = "Requests from this IP address are not allowed for this partner."
            return False
        scopes = getattr(view, "required_scopes", None)
        if scopes is None:
            scope = getattr(view, "required_scope", None)
        else:
            # HEAD and OPTIONS read like GET; a method without a mapped scope is refused.
            scope = scopes.get(request.method) or (scopes.get("GET") if request.method in ("HEAD", "OPTIONS") else None)
            if scope is None:
                return False
        return scope is None or caller_has_scope(user, scope)

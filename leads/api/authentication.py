"""`Authorization: Api-Key <key>` for partners; staff use session or token auth."""

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser, User
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from ..models import ApiKey, ApiScope
from ..services.partners import api_key_authenticate

if TYPE_CHECKING:  # drf_spectacular.openapi reads DRF's settings, which import this module
    from drf_spectacular.openapi import AutoSchema

# What a staff user may do through the API follows their Django permissions (their group).
STAFF_SCOPE_PERMISSIONS: dict[str, str] = {
    ApiScope.LEADS_WRITE: "leads.add_lead",
    ApiScope.LEADS_READ: "leads.view_lead",
    ApiScope.OUTCOMES_WRITE: "leads.change_lead",
    ApiScope.CAMPAIGNS_READ: "campaigns.view_campaign",
    ApiScope.REPORTS_READ: "campaigns.view_campaign",
    ApiScope.SUPPRESSION_WRITE: "leads.add_buyersuppression",  # staff then meet the view: lists are buyers'
}


class PartnerPrincipal:
    """request.user for a partner: authenticated, never staff, with the key's scopes."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.partner = api_key.partner
        self.pk = None

    def __str__(self) -> str:
        return f"partner:{self.partner.pk}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.api_key.scopes

    def has_perm(self, perm: str) -> bool:
        return False


# request.user in the API: a partner's principal, a user (session or token), or None when no one
# authenticated (UNAUTHENTICATED_USER; DRF's stubs assume AnonymousUser).
ApiCaller = PartnerPrincipal | User | AnonymousUser | None


def caller_has_scope(user: ApiCaller, scope: str) -> bool:
    if isinstance(user, PartnerPrincipal):
        return user.has_scope(scope)
    return bool(user and user.is_authenticated and user.is_staff and user.has_perm(STAFF_SCOPE_PERMISSIONS[scope]))


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        key = api_key_authenticate(header[len(self.keyword) + 1 :])
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown, expired or revoked API key.")
        request._request.api_key = key  # type: ignore[attr-defined]  # read by the request log line (middleware)
        return PartnerPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


# drf-spectacular registers each extension in its __init_subclass__, which is unannotated.
class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "leads.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: "AutoSchema") -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; keys are created in the admin or with `manage.py create_api_key`.",
        }

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from campaigns.visitor import client_ip

from .authentication import ApiCaller, PartnerPrincipal

if TYPE_CHECKING:  # rest_framework.views reads DRF's settings, which import this module
    from rest_framework.views import APIView

STAFF_REQUESTS_PER_MINUTE = 600


class CallerRateThrottle(SimpleRateThrottle):
    """Per partner (its own limit, shared by all its keys), per user for staff.

    Counted in the cache: Redis in production, so every web process shares the count.
    """

    scope = "caller"
    rate = f"{STAFF_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        user: ApiCaller = request.user
        if isinstance(user, PartnerPrincipal):
            return f"throttle:partner:{user.partner.pk}"  # one limit per partner, however many keys
        if user and user.is_authenticated:
            return f"throttle:user:{user.pk}"
        return None  # anonymous callers are refused before any work

    def allow_request(self, request: Request, view: "APIView") -> bool:
        user = request.user
        self.num_requests, self.duration = (
            (user.partner.rate_limit_per_minute, 60)
            if isinstance(user, PartnerPrincipal)
            else (STAFF_REQUESTS_PER_MINUTE, 60)
        )
        return super().allow_request(request, view)


class PostbackIpThrottle(SimpleRateThrottle):
    """Advertiser postbacks carry no API key: limit each calling address, so nobody can guess
    tokens at speed or flood the endpoint. One advertiser server stays well under it."""

    scope = "postback"

    def get_rate(self) -> str:
        return f"{settings.POSTBACK_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: "APIView") -> str:
        address = client_ip(request) or "unknown"
        if ":" in address:
            # One IPv6 host usually holds a whole /64: count the network, not each address.
            address = str(ipaddress.ip_network(f"{address}/64", strict=False))
        return f"throttle:postback:{address}"

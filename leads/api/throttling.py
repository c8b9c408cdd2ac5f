import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from campaigns.visitor import client_ip
from leadcrm.cache import count_in_windows

from .authentication import ApiCaller, PartnerPrincipal

if TYPE_CHECKING:  # rest_framework.views reads DRF's settings, which import this module
    from rest_framework.views import APIView

STAFF_REQUESTS_PER_MINUTE = 600


class WindowRateThrottle(SimpleRateThrottle):
    """DRF's throttle keeps a caller's request times as one cache value, read and written whole on
    every request: at a partner's limit of thousands a minute, a list of thousands, and two processes
    writing it at once lose each other's requests. This one counts per fixed window with an atomic
    increment (one round trip to Redis) and weighs the window before by how much of it still lies
    within the last `duration` seconds: a sliding window, estimated as most rate limiters do."""

    num_requests: int
    duration: int
    window_ends_in: float

    def allow_request(self, request: Request, view: "APIView") -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window, into = divmod(self.now, self.duration)
        last, this = count_in_windows(self.cache, self.key, int(window), self.duration)
        self.window_ends_in = float(self.duration - into)
        return bool(last * (1 - into / self.duration) + this <= self.num_requests)

    def wait(self) -> float:
        return max(self.window_ends_in, 1.0)


class CallerRateThrottle(WindowRateThrottle):
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


class PostbackIpThrottle(WindowRateThrottle):
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

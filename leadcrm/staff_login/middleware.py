"""After the password, a user who has a second factor reaches only the code page, and one who must set
one up only the set-up pages, until done; to every other page (the API, landing pages) their session
is anonymous. What each user must do is decided at login and kept in the session, so checking costs no
query. It is decided again when REQUIRE_STAFF_2FA has changed since; a user's own changes that ask
more of them (a role that needs a second factor, an app set up elsewhere) end their password-only
sessions instead (sessions.py)."""

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_otp.middleware import is_verified

from .services import NextStep, next_step

NEXT_STEP_KEY = "staff_login_next_step"
# Whether REQUIRE_STAFF_2FA was on when the step was decided: a session decided under the other rule
# (before a deployment turned it on) is decided again.
DECIDED_REQUIRED_KEY = "staff_login_decided_required"


def remember_next_step(request: HttpRequest, step: NextStep) -> None:
    request.session[NEXT_STEP_KEY] = step.value
    request.session[DECIDED_REQUIRED_KEY] = settings.REQUIRE_STAFF_2FA


def pending_step(request: HttpRequest) -> NextStep:
    """What the logged-in, not yet verified user must still do (decided now for a session older than this,
    or decided under the other REQUIRE_STAFF_2FA)."""
    stored = request.session.get(NEXT_STEP_KEY)
    if stored is None or request.session.get(DECIDED_REQUIRED_KEY) != settings.REQUIRE_STAFF_2FA:
        step = next_step(request.user)  # type: ignore[arg-type]  # logged in: a User
        remember_next_step(request, step)
        return step
    return NextStep(stored)


class SecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not is_verified(user):
            step = pending_step(request)
            if step != NextStep.NONE and request.path not in self.open_paths(step):
                if request.path.startswith(reverse("admin:index")):
                    return self.redirect(request, step)
                request.user = AnonymousUser()
        return self.get_response(request)

    @staticmethod
    def open_paths(step: NextStep) -> set[str]:
        paths = {reverse("admin:logout"), reverse("admin:jsi18n")}
        if step == NextStep.VERIFY:
            paths.add(reverse("two-factor-verify"))
        else:
            paths.add(reverse("two-factor-setup"))
        return paths

    @staticmethod
    def redirect(request: HttpRequest, step: NextStep) -> HttpResponse:
        url = reverse("two-factor-verify" if step == NextStep.VERIFY else "two-factor-setup")
        if request.method == "GET" and request.path != reverse("admin:index"):
            url += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(url)

"""The staff login pages: the lockout page, the code page after the password, and two-factor set-up.

Every view but locked_out is wrapped in admin_view (leadcrm.staff_login.urls): staff only."""

from typing import Any, cast
from urllib.parse import urlencode

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.models import User
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.middleware import is_verified

from leadcrm.errors import ApplicationError

from .forms import CodeForm
from .middleware import pending_step, remember_next_step
from .qr import qr_svg
from .services import (
    BACKUP_CODE_COUNT,
    NextStep,
    authenticator,
    authenticator_confirm,
    authenticator_key_text,
    authenticator_start,
    backup_codes_left,
    backup_codes_renew,
    next_step,
    second_factor_check,
    second_factor_required,
    second_factor_turn_off,
)

BACKUP_CODES_KEY = "staff_login_backup_codes"  # shown once, on the next page, then dropped


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """Axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the login page, saying until when."""
    username = get_client_username(request, credentials) or ""
    last_failure = AccessAttempt.objects.filter(
        username=username, ip_address=getattr(request, "axes_ip_address", None)
    ).aggregate(last=Max("attempt_time"))["last"]
    until = (last_failure or timezone.now()) + settings.AXES_COOLOFF_TIME
    seconds = max(1, int((until - timezone.now()).total_seconds()))
    login_form = admin.site.login_form or AdminAuthenticationForm
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "form": login_form(request, initial={"username": username}),
        "locked_username": username,
        "locked_until": timezone.localtime(until),
        "cooloff_minutes": settings.AXES_COOLOFF_MINUTES,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    # Axes calls this from its middleware, after template responses are rendered: render it here.
    response = TemplateResponse(request, "admin/staff_login/locked_out.html", context, status=429).render()
    response["Retry-After"] = str(seconds)
    return response


def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The second step of logging in: a code from the app, or a backup code."""
    user = _user(request)
    next_url = _next_url(request)
    if is_verified(user):
        return HttpResponseRedirect(next_url)
    if not user_has_device(user):
        # Their app was removed (a lost phone) since they logged in: decide again what they must do.
        remember_next_step(request, next_step(user))
        return HttpResponseRedirect(next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            checked = second_factor_check(user=user, code=form.cleaned_data["code"])
        except ApplicationError as error:
            form.add_error("code", error.message)
        else:
            otp_login(request, checked.device)
            if checked.backup_codes_left is not None:
                messages.warning(
                    request,
                    f"You logged in with a backup code; {checked.backup_codes_left} left. "
                    "Make new ones under Two-factor authentication if you are running out.",
                )
            return HttpResponseRedirect(next_url)
    context = {**admin.site.each_context(request), "title": "Two-factor authentication", "form": form}
    return TemplateResponse(request, "admin/staff_login/verify.html", context)


def two_factor_overview(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    device = authenticator(user)
    context = {
        **admin.site.each_context(request),
        "title": "Two-factor authentication",
        "device": device,
        "required": second_factor_required(user),
        "backup_codes_left": backup_codes_left(user) if device else 0,
        "turn_off_form": CodeForm(),
    }
    return TemplateResponse(request, "admin/staff_login/overview.html", context)


def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Scan the QR code (or type the key) into an authenticator app, then confirm with a code it shows."""
    user = _user(request)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = authenticator_confirm(
                user=user, code=form.cleaned_data["code"], keep_session=request.session.session_key
            )
        except ApplicationError as error:
            form.add_error("code", error.message)
        else:
            otp_login(request, device)
            remember_next_step(request, NextStep.VERIFY)
            request.session[BACKUP_CODES_KEY] = codes
            messages.success(request, "Two-factor authentication is on. From now on, logging in asks for a code.")
            return HttpResponseRedirect(_with_next(reverse("two-factor-backup-codes"), request))
    device = authenticator_start(user=user)
    forced = not is_verified(user) and pending_step(request) == NextStep.SET_UP  # sent here by the middleware
    context = {
        **admin.site.each_context(request),
        "title": "Set up two-factor authentication",
        "form": form,
        "qr_code": qr_svg(device.config_url),
        "key_text": authenticator_key_text(device),
        "forced": forced,
        "replacing": authenticator(user) is not None,
        "backup_code_count": BACKUP_CODE_COUNT,
    }
    if forced:
        # Nothing else opens until this is done, so there is no sidebar to offer it.
        context.update(is_nav_sidebar_enabled=False, sidebar_navigation=[], available_apps=[])
    return TemplateResponse(request, "admin/staff_login/setup.html", context)


def two_factor_backup_codes(request: HttpRequest) -> HttpResponse:
    """New backup codes are shown here once, right after they are made; a POST makes new ones."""
    user = _user(request)
    if request.method == "POST":
        try:
            request.session[BACKUP_CODES_KEY] = backup_codes_renew(user=user)
        except ApplicationError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(reverse("two-factor"))
        messages.success(request, "New backup codes made; the old ones no longer work.")
        return HttpResponseRedirect(_with_next(request.path, request))
    context = {
        **admin.site.each_context(request),
        "title": "Backup codes",
        "codes": request.session.pop(BACKUP_CODES_KEY, None),
        "backup_codes_left": backup_codes_left(user),
        "has_authenticator": authenticator(user) is not None,
        "next_url": _next_url(request),
    }
    return TemplateResponse(request, "admin/staff_login/backup_codes.html", context)


@require_POST
def two_factor_turn_off(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = CodeForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError("Enter a code from your app or a backup code to turn two-factor authentication off.")
        second_factor_turn_off(user=user, code=form.cleaned_data["code"])
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        remember_next_step(request, NextStep.NONE)
        messages.success(request, "Two-factor authentication is off. Logging in asks for your password only.")
    return HttpResponseRedirect(reverse("two-factor"))


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # admin_view has checked it is an active staff user


def _next_url(request: HttpRequest) -> str:
    candidate = request.GET.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("admin:index")


def _with_next(url: str, request: HttpRequest) -> str:
    """url, passing on where the user was going (the dashboard needs no mention)."""
    next_url = _next_url(request)
    return url if next_url == reverse("admin:index") else f"{url}?{urlencode({'next': next_url})}"

"""Who needs a second factor after the password, and the writes that set one up, check it and turn it off.

A staff user's second factor is one authenticator app (a TOTP device, its key sealed:
`SealedAuthenticator`) plus ten single-use backup codes (one static device, each code stored as a
keyed digest). Both are replaced together whenever a new app is confirmed.
"""

import base64
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from leadcrm.errors import Conflict, InvalidInput

from .models import SealedAuthenticator
from .secrets import backup_code_digest
from .sessions import password_only_sessions_end

BACKUP_CODE_COUNT = 10
MANAGERS_GROUP = "Managers"  # leadcrm.roles
AUTHENTICATOR_NAME = "Authenticator app"
TOTP_DIGITS = 6  # django-otp's default, which every authenticator app shows
BACKUP_CODES_NAME = "Backup codes"


class NextStep(StrEnum):
    """What a user must do after a correct password before the admin opens."""

    NONE = ""
    VERIFY = "verify"  # enter a code from their app, or a backup code
    SET_UP = "set_up"  # required to use a second factor and has none yet


@dataclass(frozen=True)
class Checked:
    device: SealedAuthenticator | StaticDevice
    backup_codes_left: int | None  # None when the code came from the app


def second_factor_required(user: User) -> bool:
    """Superusers and managers must use a second factor when REQUIRE_STAFF_2FA is on; others may."""
    if not settings.REQUIRE_STAFF_2FA:
        return False
    return user.is_superuser or user.groups.filter(name=MANAGERS_GROUP).exists()


def next_step(user: User) -> NextStep:
    if user_has_device(user):
        return NextStep.VERIFY
    if second_factor_required(user):
        return NextStep.SET_UP
    return NextStep.NONE


def authenticator(user: User) -> SealedAuthenticator | None:
    """The user's confirmed authenticator app, if they have set one up."""
    device: SealedAuthenticator | None = (
        SealedAuthenticator.objects.filter(user=user, confirmed=True).order_by("-pk").first()
    )
    return device


def backup_codes_left(user: User) -> int:
    count: int = StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
    return count


def authenticator_key_text(device: SealedAuthenticator) -> str:
    """The key as authenticator apps take it when typed in: base32, in groups of four."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


@transaction.atomic
def authenticator_start(*, user: User) -> SealedAuthenticator:
    """The app being set up: the same key on every visit of the set-up page until it is confirmed."""
    device: SealedAuthenticator | None = (
        SealedAuthenticator.objects.filter(user=user, confirmed=False).order_by("pk").first()
    )
    if device is None:
        device = SealedAuthenticator.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def authenticator_confirm(
    *, user: User, code: str, keep_session: str | None = None
) -> tuple[SealedAuthenticator, list[str]]:
    """Confirm the app being set up with a code it shows. It replaces the user's earlier app and backup
    codes; the new backup codes are returned so the page can show them, once. The user's other sessions
    that were opened with the password alone end: from now on their account asks for a code."""
    codes: list[str] = []
    with transaction.atomic():
        device = (
            SealedAuthenticator.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        )
        if device is None:
            raise Conflict("This set-up has already been finished or replaced. Start again.")
        _check_allowed(device)
        # A wrong code is not an exception here: the failure count that throttles guessing must be kept.
        if device.verify_token(_digits(code)):
            SealedAuthenticator.objects.filter(user=user).exclude(pk=device.pk).delete()
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _new_backup_codes(user)
            password_only_sessions_end([user.pk], keep=keep_session)
    if not codes:
        raise InvalidInput(WRONG_CODE)
    return device, codes


def second_factor_check(*, user: User, code: str) -> Checked:
    """Check a code from the user's app (six digits) or one of their backup codes (used up)."""
    digits = _digits(code)
    with transaction.atomic():
        device: SealedAuthenticator | StaticDevice | None
        if digits.isdigit() and len(digits) == TOTP_DIGITS:
            device = (
                SealedAuthenticator.objects.select_for_update()
                .filter(user=user, confirmed=True)
                .order_by("-pk")
                .first()
            )
            code = digits
        else:
            device = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            code = backup_code_digest("".join(code.split()).replace("-", "").lower())
        if device is None:
            raise InvalidInput(WRONG_CODE)
        _check_allowed(device)
        accepted = device.verify_token(code)
    if not accepted:
        raise InvalidInput(WRONG_CODE)
    left = backup_codes_left(user) if isinstance(device, StaticDevice) else None
    return Checked(device=device, backup_codes_left=left)


@transaction.atomic
def backup_codes_renew(*, user: User) -> list[str]:
    """New backup codes for a user with an authenticator app; the old ones stop working."""
    if authenticator(user) is None:
        raise Conflict("Set up an authenticator app first.")
    return _new_backup_codes(user)


def second_factor_turn_off(*, user: User, code: str) -> None:
    """Remove the user's app and backup codes, after a current code; not for those who must use them."""
    if second_factor_required(user):
        raise Conflict("Your role requires two-factor authentication, so it cannot be turned off.")
    second_factor_check(user=user, code=code)
    second_factor_reset(user=user)


@transaction.atomic
def second_factor_reset(*, user: User) -> None:
    """An administrator removes someone's app and backup codes (a lost phone); at their next login they
    set up a new app if their role requires one."""
    SealedAuthenticator.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()


WRONG_CODE = "That code is not right. Codes from the app change every 30 seconds; backup codes work once."


def _digits(code: str) -> str:
    return "".join(code.split())


def _check_allowed(device: SealedAuthenticator | StaticDevice) -> None:
    """django-otp doubles the wait after each wrong code; say how long instead of failing silently."""
    allowed, details = device.verify_is_allowed()
    if not allowed:
        until = (details or {}).get("locked_until")
        seconds = max(1, int((until - timezone.now()).total_seconds()) + 1) if until else 1
        raise InvalidInput(f"Too many wrong codes. Wait {seconds} second{'s' * (seconds != 1)} and try again.")


def _new_backup_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_CODES_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=backup_code_digest(code)) for code in codes)
    return codes

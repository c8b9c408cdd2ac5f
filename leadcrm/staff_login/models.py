"""Staff's authenticator keys, encrypted at rest.

django-otp keeps a TOTP device's key as plain hex, so a copy of the database would let anyone make
every staff member's codes. `SealedAuthenticator` is the same table under a proxy that stores the key
sealed (leadcrm.staff_login.secrets, with FIELD_ENCRYPTION_KEY from the environment) and unseals it
only to check a code or show the set-up page. django-otp's own TOTPDevice cannot read a sealed key
(it fails, so it accepts no code): nothing checks a code against the stored text.
"""

from typing import Any

from django_otp.plugins.otp_totp.models import TOTPDevice

from leadcrm.encryption import is_sealed

from .secrets import sealed_key, unsealed_key


class SealedAuthenticator(TOTPDevice):
    key: str  # django-otp's field (the library has no types)

    class Meta:
        proxy = True
        verbose_name = "authenticator app"

    @property
    def bin_key(self) -> bytes:
        return unsealed_key(self.key)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not is_sealed(self.key):  # a new device's random hex key (django-otp's default)
            self.key = sealed_key(self.key)
        super().save(*args, **kwargs)

"""django-axes and django-otp's TOTP app under names staff read in the admin's breadcrumbs; INSTALLED_APPS
names these. (Kept out of apps.py, where a second AppConfig would hide StaffLoginConfig from Django.)"""

from axes.apps import AppConfig as AxesAppConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPAppConfig


class LoginLockoutsConfig(AxesAppConfig):
    verbose_name = "Login lockouts"


class TwoFactorAppsConfig(TOTPAppConfig):
    verbose_name = "Two-factor authentication"

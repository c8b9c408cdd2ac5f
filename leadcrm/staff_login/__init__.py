"""Staff login: a lockout after repeated wrong passwords (django-axes) and a second factor for staff
(django-otp: an authenticator app with backup codes), required of superusers and managers when
settings.REQUIRE_STAFF_2FA is on."""

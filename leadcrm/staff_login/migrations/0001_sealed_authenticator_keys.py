"""Authenticator keys sealed and backup codes digested (leadcrm.staff_login.secrets): django-otp had
stored both in the clear. Going back restores the keys; backup codes cannot be restored, so they are
removed (their owners renew them from the two-factor page)."""

from django.db import migrations

from leadcrm.encryption import is_sealed
from leadcrm.staff_login.secrets import BACKUP_CODE_DIGEST_LENGTH, backup_code_digest, sealed_key, unsealed_key


def seal_secrets(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticToken = apps.get_model("otp_static", "StaticToken")
    for device in TOTPDevice.objects.all():
        if not is_sealed(device.key):
            device.key = sealed_key(device.key)
            device.save(update_fields=["key"])
    for token in StaticToken.objects.all():
        if len(token.token) != BACKUP_CODE_DIGEST_LENGTH:
            token.token = backup_code_digest(token.token)
            token.save(update_fields=["token"])


def unseal_secrets(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticToken = apps.get_model("otp_static", "StaticToken")
    for device in TOTPDevice.objects.all():
        if is_sealed(device.key):
            device.key = unsealed_key(device.key).hex()
            device.save(update_fields=["key"])
    digested = [token.pk for token in StaticToken.objects.all() if len(token.token) == BACKUP_CODE_DIGEST_LENGTH]
    StaticToken.objects.filter(pk__in=digested).delete()


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [
        migrations.CreateModel(
            name="SealedAuthenticator",
            fields=[],
            options={
                "verbose_name": "authenticator app",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("otp_totp.totpdevice",),
        ),
        migrations.RunPython(seal_secrets, unseal_secrets),
    ]

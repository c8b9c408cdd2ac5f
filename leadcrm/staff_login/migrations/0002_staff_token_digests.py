"""Staff API tokens stored as digests (leadcrm.staff_login.tokens): DRF had stored them in the clear.
Each token keeps working, as its digest is what is now looked up. Going back cannot restore a token,
so the tokens are removed (staff are given new ones)."""

from django.db import migrations

from leadcrm.staff_login.tokens import staff_token_digest


def digest_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    for key in list(Token.objects.values_list("key", flat=True)):
        # The key is the table's primary key, which nothing references: changed in place.
        Token.objects.filter(key=key).update(key=staff_token_digest(key))


def remove_tokens(apps, schema_editor):
    apps.get_model("authtoken", "Token").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff_login", "0001_sealed_authenticator_keys"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(digest_tokens, remove_tokens)]
